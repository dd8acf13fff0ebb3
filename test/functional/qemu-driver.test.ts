// qemu-driver behaviours beyond the shared contract, against a real QEMU fixture guest: discovery at
// initHost keeps a monitor connection per guest (events flow without driver calls), a guest without
// uuid, a TCP serial console, a console log found through QEMU's command line, and a restarted
// novamon stopping and starting a guest it did not launch.

import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import type { LifecycleEvent } from '../../src/virt/driver.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { PowerState } from '../../src/virt/power-state.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { FIXTURE_CONSOLE_LINE, FIXTURE_TICK_PREFIX, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';

const TIMEOUT_MS = 5000;


async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const template = new InstanceNameTemplate('instance-%08x');

function qemuDriver(instancesPath: string, stateDir: string, monitors: QmpMonitorRegistry): QemuDriver {
  return new QemuDriver({ instancesPath, nameTemplate: template, monitors, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger(), stateDir });
}

describe('qemu driver on a real guest', () => {
  let root: string;
  let instancesPath: string;
  let stateDir: string;
  let guest: FixtureGuest;
  let serialPort: number;
  let monitors: QmpMonitorRegistry;
  let driver: QemuDriver;
  const events: LifecycleEvent[] = [];

  const newDriver = (registry: QmpMonitorRegistry) => qemuDriver(instancesPath, stateDir, registry);

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-qemu-driver-'));
    instancesPath = path.join(root, 'instances');
    stateDir = path.join(root, 'state');
    serialPort = await freePort();
    // Started before the driver exists, without uuid, logging its console under another name than
    // <name>.console.log (inside instances_path: power_on relaunches nothing that writes outside it).
    guest = await startFixtureGuest({
      instancesPath,
      name: template.format(0x51),
      uuid: null,
      serialTcpPort: serialPort,
      consoleLogPath: path.join(instancesPath, 'serial-elsewhere.log'),
    });
    await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE);
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: TIMEOUT_MS, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = newDriver(monitors);
    driver.onLifecycleEvent((e) => events.push(e));
    await driver.initHost('functional-host');
  });

  afterAll(async () => {
    await driver?.close();
    await monitors?.closeAll();
    await guest?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('discovers the guest at initHost, uuid null, and keeps its monitor connected', async () => {
    expect(await driver.listInstances()).toEqual([{ name: guest.name, uuid: null, powerState: PowerState.RUNNING }]);
    expect(monitors.has(guest.socketPath)).toBe(true);
  });

  it('lifecycle events flow from the kept connection, whoever sends the command', async () => {
    await monitors.execute(guest.socketPath, 'stop');
    await until('paused event', () => events.find((e) => e.name === guest.name && e.transition === 'paused'));
    await monitors.execute(guest.socketPath, 'cont');
    const resumed = await until('resumed event', () => events.find((e) => e.name === guest.name && e.transition === 'resumed'));
    expect(resumed).toMatchObject({ uuid: null, powerState: PowerState.RUNNING, source: 'RESUME' });
  });

  it('finds the console log through QEMU\'s command line', async () => {
    expect((await driver.getConsoleOutput({ name: guest.name })).toString('latin1')).toContain(FIXTURE_CONSOLE_LINE);
  });

  it('serves the TCP serial console, and it carries the guest\'s output', async () => {
    const endpoint = await driver.getSerialConsole({ name: guest.name });
    expect(endpoint).toEqual({ host: '127.0.0.1', port: serialPort, internalAccessPath: null });
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(endpoint.port, endpoint.host);
      let got = '';
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no tick on the serial console; got ${JSON.stringify(got)}`));
      }, 10_000);
      socket.on('data', (d) => {
        got += d.toString('latin1');
        if (got.includes(FIXTURE_TICK_PREFIX)) {
          clearTimeout(timer);
          socket.destroy();
          resolve(got);
        }
      });
      socket.on('error', reject);
    });
    expect(text).toContain(FIXTURE_TICK_PREFIX);
  });

  it('VNC is unavailable on a guest without it', async () => {
    await expect(driver.getVncConsole({ name: guest.name })).rejects.toMatchObject({ className: 'ConsoleTypeUnavailable' });
  });

  it('a restarted novamon stops and starts a guest it did not launch', async () => {
    await driver.close();
    await monitors.closeAll();
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: TIMEOUT_MS, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = newDriver(monitors);
    const seen: LifecycleEvent[] = [];
    driver.onLifecycleEvent((e) => seen.push(e));
    await driver.initHost('functional-host');

    // Without a pidfile the driver finds QEMU by scanning /proc for the monitor path.
    const oldPid = guest.currentPid();
    await rm(guest.pidfilePath, { force: true });
    const diagnostics = await driver.getInstanceDiagnostics({ name: guest.name });
    expect(diagnostics.cpuDetails[0]?.time).toBeGreaterThan(0);
    expect(diagnostics.uptime).toBeGreaterThanOrEqual(0);

    await driver.powerOff({ name: guest.name }, { timeout: 0, retryInterval: 1 });
    expect((await driver.getInfo({ name: guest.name })).state).toBe(PowerState.SHUTDOWN);
    expect(guest.currentPid()).toBeNull();
    await driver.powerOn({ name: guest.name });
    expect((await driver.getInfo({ name: guest.name })).state).toBe(PowerState.RUNNING);
    const newPid = guest.currentPid();
    expect(newPid).not.toBeNull();
    expect(newPid).not.toBe(oldPid);
    expect(seen.map((e) => e.transition)).toEqual(['stopped', 'started']);
    // The relaunched QEMU appends to the same log, so history survives the restart.
    const log = await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE);
    await until('second boot line', async () => {
      const text = (await driver.getConsoleOutput({ name: guest.name })).toString('latin1');
      return text.split(FIXTURE_CONSOLE_LINE).length >= 3 ? text : undefined;
    }, 30_000);
    expect(log).toContain(FIXTURE_CONSOLE_LINE);
  });
});

describe('qemu driver following a guest that appears while its monitor does not answer', () => {
  let root: string;
  let guest: FixtureGuest | undefined;
  let holder: net.Socket | undefined;
  let monitors: QmpMonitorRegistry | undefined;
  let driver: QemuDriver | undefined;

  afterAll(async () => {
    holder?.destroy();
    await driver?.close();
    await monitors?.closeAll();
    await guest?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('connects once the monitor answers, and the guest\'s events flow without a driver call', async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-qemu-follow-'));
    const instancesPath = path.join(root, 'instances');
    await mkdir(instancesPath);
    // Each try waits half a second for the greeting, as a QEMU still starting or held by another client keeps it.
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: 500, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = qemuDriver(instancesPath, path.join(root, 'state'), monitors);
    const events: LifecycleEvent[] = [];
    driver.onLifecycleEvent((e) => events.push(e));
    // A guest's model is announced (aspect `connection`) once loaded: from then on its events are reported.
    const loaded = new Set<string>();
    driver.onGuestChange((view, aspect) => {
      if (aspect === 'connection') loaded.add(view.name);
    });
    await driver.initHost('functional-host');

    // The guest starts elsewhere; another client takes its monitor (QEMU serves one at a time), and only
    // then does the socket appear in instances_path.
    guest = await startFixtureGuest({ instancesPath: path.join(root, 'staging'), name: template.format(0x52) });
    const held = net.connect(guest.socketPath);
    holder = held;
    await new Promise<void>((resolve, reject) => {
      held.once('data', () => resolve());
      held.once('error', reject);
    });
    const socketPath = path.join(instancesPath, `${guest.name}.monitor`);
    await rename(guest.socketPath, socketPath);

    await new Promise((r) => setTimeout(r, 2000));
    expect(monitors.has(socketPath)).toBe(false);
    held.destroy();

    await until('the driver\'s own connection, its model loaded', () => (guest && loaded.has(guest.name) ? true : undefined), 15_000);
    expect(monitors.has(socketPath)).toBe(true);
    await monitors.execute(socketPath, 'stop');
    const paused = await until('paused event', () => events.find((e) => e.name === guest?.name && e.transition === 'paused'));
    expect(paused).toMatchObject({ powerState: PowerState.PAUSED, source: 'STOP' });
  });
});
