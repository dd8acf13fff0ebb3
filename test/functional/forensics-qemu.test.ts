// Screenshots and trigger_crash_dump through the qemu driver, on real QEMU guests booting boot sectors
// that paint the screen a known colour and answer NMIs on their serial port.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleNotAvailable, InstanceNotFound, InstanceNotRunning } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { buildVariantImage, FIXTURE_NMI_LINE, PAINT_RGB } from '../fixtures/boot-variants.js';
import { FIXTURE_CONSOLE_LINE, killAllFixtureGuests, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { countColour, decodePng } from '../fixtures/png.js';

const TIMEOUT_MS = 10_000;

describe('screenshot and trigger_crash_dump on real QEMU (qemu driver)', () => {
  const template = new InstanceNameTemplate('instance-%08x');
  let root: string;
  let instancesPath: string;
  let stateDir: string;
  let painted: FixtureGuest;
  let headless: FixtureGuest;
  let monitors: QmpMonitorRegistry;
  let driver: QemuDriver;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-forensics-'));
    instancesPath = path.join(root, 'instances');
    stateDir = path.join(root, 'state');
    [painted, headless] = await Promise.all([
      startFixtureGuest({ instancesPath, name: template.format(0x141), vnc: true, image: buildVariantImage('paint') }),
      startFixtureGuest({ instancesPath, name: template.format(0x142), image: buildVariantImage('paint') }),
    ]);
    await Promise.all([waitForFileText(painted.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000), waitForFileText(headless.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000)]);
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: TIMEOUT_MS, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = new QemuDriver({ instancesPath, nameTemplate: template, monitors, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger(), stateDir });
    await driver.initHost('forensics-host');
  }, 120_000);

  afterAll(async () => {
    await driver?.close();
    await monitors?.closeAll();
    await killAllFixtureGuests();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('returns a PNG of the screen in the colour the guest painted, red not blue', async () => {
    const shot = await driver.screenshot({ name: painted.name });
    const img = decodePng(shot.png);
    // VGA text mode: 80x25 cells of 9x16 pixels.
    expect([img.width, img.height]).toEqual([720, 400]);
    expect([shot.width, shot.height]).toEqual([720, 400]);
    expect(img.pixel(360, 200)).toEqual([...PAINT_RGB]);
    expect(countColour(img, PAINT_RGB)).toBe(720 * 400);
    // Nothing is left behind in novamon's screendump directory.
    expect(await readdir(path.join(stateDir, 'screendumps'))).toEqual([]);
  });

  it('refuses a guest without a display, and a guest that does not exist', async () => {
    await expect(driver.screenshot({ name: headless.name })).rejects.toBeInstanceOf(ConsoleNotAvailable);
    await expect(driver.screenshot({ name: template.format(0x1ff) })).rejects.toBeInstanceOf(InstanceNotFound);
  });

  it('injects an NMI the guest sees (trigger_crash_dump)', async () => {
    await driver.triggerCrashDump({ name: painted.name });
    await waitForFileText(painted.consoleLogPath, FIXTURE_NMI_LINE, 30_000);
  });

  it('raises InstanceNotRunning for a powered-off guest, as Nova does', async () => {
    await driver.powerOff({ name: headless.name }, { timeout: 0, retryInterval: 1 });
    await expect(driver.triggerCrashDump({ name: headless.name })).rejects.toBeInstanceOf(InstanceNotRunning);
    await expect(driver.screenshot({ name: headless.name })).rejects.toBeInstanceOf(InstanceNotRunning);
  });
});
