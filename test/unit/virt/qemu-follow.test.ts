// The qemu driver's follow-up of a monitor socket that appears in instances_path but is not a working QEMU
// monitor (a stale socket, a process that hangs up at once): tried again, backing off rather than spinning,
// and left alone once the socket is gone. (A real QEMU that answers late: test/functional/qemu-driver.test.ts.)

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import { QmpMonitorRegistry } from '../../../src/qmp/monitor-registry.js';
import { InstanceNameTemplate } from '../../../src/virt/instance-name.js';
import { QemuDriver } from '../../../src/virt/qemu/driver.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('qemu driver following a new monitor socket that hangs up', () => {
  let root: string | undefined;
  let server: net.Server | undefined;
  let monitors: QmpMonitorRegistry | undefined;
  let driver: QemuDriver | undefined;

  afterEach(async () => {
    await driver?.close();
    await monitors?.closeAll();
    if (server?.listening) await new Promise((r) => server?.close(r));
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('tries again with growing pauses, and stops once the socket is gone', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-follow-'));
    const instancesPath = path.join(root, 'instances');
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: 1000, commandTimeoutMs: 1000, logger: silentLogger() });
    driver = new QemuDriver({ instancesPath, nameTemplate: new InstanceNameTemplate('instance-%08x'), monitors, commandTimeoutMs: 1000, logger: silentLogger(), stateDir: path.join(root, 'state') });
    await driver.initHost('unit-host');

    const accepted: number[] = [];
    const t0 = Date.now();
    const hangUp = (socket: net.Socket) => {
      accepted.push(Date.now() - t0);
      socket.destroy();
    };
    const s = net.createServer(hangUp);
    server = s;
    await new Promise<void>((resolve) => s.listen(path.join(instancesPath, 'instance-00000001.monitor'), resolve));

    await sleep(3500);
    // 0.25 s after the socket appears, then pauses of 0.5, 1 and 2 s: three tries by now (the fourth is due
    // at 3.75 s), not a busy loop.
    expect(accepted.length).toBeGreaterThanOrEqual(3);
    expect(accepted.length).toBeLessThanOrEqual(5);
    for (let i = 2; i < accepted.length; i++) {
      expect((accepted[i] as number) - (accepted[i - 1] as number)).toBeGreaterThan((accepted[i - 1] as number) - (accepted[i - 2] as number));
    }
    expect(monitors.has(path.join(instancesPath, 'instance-00000001.monitor'))).toBe(false);

    // Closing the server removes the socket file: the try already scheduled finds nothing and ends the follow-up.
    await new Promise((r) => s.close(r));
    const before = accepted.length;
    const again = net.createServer(hangUp);
    // Another socket under a name the driver does not follow (not an instance name) stays untouched too.
    await new Promise<void>((resolve) => again.listen(path.join(instancesPath, 'not-a-guest.monitor'), resolve));
    await sleep(4500);
    await new Promise((r) => again.close(r));
    expect(accepted.length).toBe(before);
  }, 15_000);
});
