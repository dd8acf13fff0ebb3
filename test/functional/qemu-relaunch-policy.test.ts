// power_on against a real QEMU when the recorded command line was rewritten (as a compromised QEMU can
// rewrite its argv before novamon records it): a disk in a configured [qemu] relaunch_image_paths
// directory boots; a console log or disk that leads outside the allowed roots is refused before novamon
// touches the file or runs anything.

import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalError } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { PowerState } from '../../src/virt/power-state.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { loadRecord, saveRecord } from '../../src/virt/qemu/launcher.js';
import { readCmdline } from '../../src/virt/qemu/proc.js';
import { FIXTURE_CONSOLE_LINE, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';

const TIMEOUT_MS = 5000;

describe('power_on with a rewritten command line (qemu driver, real QEMU)', () => {
  const template = new InstanceNameTemplate('instance-%08x');
  let root: string;
  let instancesPath: string;
  let imagesPath: string;
  let outside: string;
  let stateDir: string;
  let guest: FixtureGuest;
  let monitors: QmpMonitorRegistry;
  let driver: QemuDriver;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-relaunch-policy-'));
    instancesPath = path.join(root, 'instances');
    imagesPath = path.join(root, 'images');
    outside = path.join(root, 'outside');
    stateDir = path.join(root, 'state');
    await Promise.all([mkdir(imagesPath), mkdir(outside)]);
    guest = await startFixtureGuest({ instancesPath, name: template.format(0x5e1) });
    await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE);
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: TIMEOUT_MS, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = new QemuDriver({
      instancesPath, nameTemplate: template, monitors, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger(), stateDir,
      relaunchImagePaths: [imagesPath],
    });
    await driver.initHost('functional-host');
  });

  afterAll(async () => {
    await driver?.close();
    await monitors?.closeAll();
    await guest?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  /** Power the guest off, then replace `from` by `to` in its recorded command line. */
  async function offAndRewrite(from: string, to: string): Promise<void> {
    await driver.powerOff({ name: guest.name }, { timeout: 0, retryInterval: 1 });
    expect((await driver.getInfo({ name: guest.name })).state).toBe(PowerState.SHUTDOWN);
    const record = await loadRecord(stateDir, guest.name);
    expect(record?.argv.some((a) => a.includes(from))).toBe(true);
    if (record) await saveRecord(stateDir, { ...record, argv: record.argv.map((a) => a.split(from).join(to)) });
  }

  it('boots a guest whose disk lives in a configured image directory', async () => {
    const moved = path.join(imagesPath, path.basename(guest.imagePath));
    await copyFile(guest.imagePath, moved);
    await offAndRewrite(`file=${guest.imagePath}`, `file=${moved}`);
    await driver.powerOn({ name: guest.name });
    expect((await driver.getInfo({ name: guest.name })).state).toBe(PowerState.RUNNING);
    const pid = guest.currentPid();
    expect(pid).not.toBeNull();
    expect((await readCmdline(pid ?? 0))?.some((a) => a.includes(`file=${moved}`))).toBe(true);
  });

  it('refuses a console log outside instances_path before capping it, and runs nothing', async () => {
    // A long file outside the roots: capping it (what a relaunch does to its console log) would rewrite it.
    const victim = path.join(outside, 'precious.log');
    const content = `${'x'.repeat(199)}\n`.repeat(1024);
    await writeFile(victim, content);
    await offAndRewrite(`logfile=${guest.consoleLogPath}`, `logfile=${victim}`);
    const err = await driver.powerOn({ name: guest.name }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toMatch(new RegExp(`refusing to relaunch ${guest.name}: -chardev logfile=${victim} is outside instances_path`));
    expect(await readFile(victim, 'utf8')).toBe(content);
    expect(guest.currentPid()).toBeNull();
    expect((await driver.getInfo({ name: guest.name })).state).toBe(PowerState.SHUTDOWN);
  });

  it('refuses a disk that is a symlink inside instances_path to a file outside', async () => {
    const secret = path.join(outside, 'secret.raw');
    await writeFile(secret, 'host secret');
    const link = path.join(instancesPath, `${guest.name}-planted.img`);
    await symlink(secret, link);
    // The console log back where it was, so the disk is what the rules meet.
    const record = await loadRecord(stateDir, guest.name);
    if (!record) throw new Error('no record');
    const argv = record.argv.map((a) => (a.startsWith('file=') ? `file=${link},format=raw,if=none,id=drive-virtio-disk0` : a.replace(/logfile=[^,]*/, `logfile=${guest.consoleLogPath}`)));
    await saveRecord(stateDir, { ...record, argv });
    const err = await driver.powerOn({ name: guest.name }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`-drive file=${link} resolves to ${secret}, outside instances_path and \\[qemu\\] relaunch_image_paths`));
    expect(guest.currentPid()).toBeNull();
  });
});
