// The serial console survives a hard reboot and a relaunch: console output keeps the earlier boots'
// lines, and a relaunch first cuts the log to its last 100 KiB. Real QEMU, qemu driver.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import { CONSOLE_HISTORY_BYTES } from '../../src/virt/console-history.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { FIXTURE_CONSOLE_LINE, FIXTURE_TICK_PREFIX, killAllFixtureGuests, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';

const count = (text: string, needle: string) => text.split(needle).length - 1;
const OLDEST = 'the oldest line of all';

describe('console output across reboots and relaunches (qemu driver)', () => {
  const template = new InstanceNameTemplate('instance-%08x');
  let root: string;
  let guest: FixtureGuest;
  let monitors: QmpMonitorRegistry;
  let driver: QemuDriver;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-console-history-'));
    const instancesPath = path.join(root, 'instances');
    guest = await startFixtureGuest({ instancesPath, name: template.format(0x143) });
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: 10_000, commandTimeoutMs: 10_000, logger: silentLogger() });
    driver = new QemuDriver({ instancesPath, nameTemplate: template, monitors, commandTimeoutMs: 10_000, logger: silentLogger(), stateDir: path.join(root, 'state') });
    await driver.initHost('history-host');
    await waitForFileText(guest.consoleLogPath, `${FIXTURE_TICK_PREFIX}00002`, 60_000);
  }, 120_000);

  afterAll(async () => {
    await driver?.close();
    await monitors?.closeAll();
    await killAllFixtureGuests();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('keeps the lines of the boot before a hard reboot', async () => {
    await driver.reboot({ name: guest.name }, 'HARD');
    // The guest boots again and prints its first line a second time after the old ticks.
    const deadline = Date.now() + 60_000;
    let out = '';
    while (count(out, FIXTURE_CONSOLE_LINE) < 2) {
      if (Date.now() > deadline) throw new Error(`no second boot line in:\n${out}`);
      await new Promise((r) => setTimeout(r, 250));
      out = (await driver.getConsoleOutput({ name: guest.name })).toString('latin1');
    }
    expect(out).toContain(`${FIXTURE_TICK_PREFIX}00002`);
    expect(out.indexOf(`${FIXTURE_TICK_PREFIX}00002`)).toBeLessThan(out.lastIndexOf(FIXTURE_CONSOLE_LINE));
  }, 90_000);

  it('keeps them across a power-off and a relaunch, capped', async () => {
    await driver.powerOff({ name: guest.name }, { timeout: 0, retryInterval: 1 });
    // An old, long history in front of what the guest printed: the relaunch must cut it.
    const before = await readFile(guest.consoleLogPath, 'latin1');
    const filler = 'old boot noise\n'.repeat(20_000);
    await writeFile(guest.consoleLogPath, `${OLDEST}\n${filler}${before}`);
    await driver.powerOn({ name: guest.name });
    const deadline = Date.now() + 60_000;
    let file = '';
    while (count(file, FIXTURE_CONSOLE_LINE) < 3) {
      if (Date.now() > deadline) throw new Error(`no third boot line in the log:\n${file.slice(-500)}`);
      await new Promise((r) => setTimeout(r, 250));
      file = await readFile(guest.consoleLogPath, 'latin1');
    }
    expect(file).not.toContain(OLDEST);
    expect(file.length).toBeLessThanOrEqual(CONSOLE_HISTORY_BYTES + 4096);
    const out = (await driver.getConsoleOutput({ name: guest.name })).toString('latin1');
    expect(out).toContain(`${FIXTURE_TICK_PREFIX}00002`);
    expect(out.indexOf(`${FIXTURE_TICK_PREFIX}00002`)).toBeLessThan(out.lastIndexOf(FIXTURE_CONSOLE_LINE));
  }, 120_000);
});
