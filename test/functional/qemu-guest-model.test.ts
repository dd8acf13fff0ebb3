// The qemu driver's per-guest model on a real QEMU guest: the running check, power state, consoles and
// validate_console_port cost no monitor command (counted on the registry); diagnostics cost at most two,
// and concurrent requests share them; the model stays right across STOP/RESUME, a reset that leaves the
// guest in prelaunch without an event, SHUTDOWN and a dropped monitor, and a reconnect after a change it did not see.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { QmpConnection } from '../../src/qmp/connection.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import type { GuestAspect, GuestView, LifecycleEvent } from '../../src/virt/driver.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { PowerState } from '../../src/virt/power-state.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { FIXTURE_CONSOLE_LINE, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';

const TIMEOUT_MS = 5000;

async function until<T>(what: string, probe: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('qemu guest model on a real guest', () => {
  const template = new InstanceNameTemplate('instance-%08x');
  let root: string;
  let instancesPath: string;
  let guest: FixtureGuest;
  let serialPort: number;
  let monitors: QmpMonitorRegistry;
  let driver: QemuDriver;
  const events: LifecycleEvent[] = [];
  const changes: [GuestAspect, GuestView][] = [];
  const ref = () => ({ name: guest.name, uuid: guest.uuid ?? undefined });
  const commands = () => monitors.stats().commands;

  /** Monitor commands `fn` sent through the registry. */
  async function counted(fn: () => Promise<unknown>): Promise<number> {
    const before = commands();
    await fn();
    return commands() - before;
  }

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'novamon-qemu-model-'));
    instancesPath = path.join(root, 'instances');
    serialPort = await freePort();
    guest = await startFixtureGuest({ instancesPath, name: template.format(0x61), vnc: true, serialTcpPort: serialPort });
    await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE);
    monitors = new QmpMonitorRegistry({ connectTimeoutMs: TIMEOUT_MS, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger() });
    driver = new QemuDriver({ instancesPath, nameTemplate: template, monitors, commandTimeoutMs: TIMEOUT_MS, logger: silentLogger(), stateDir: path.join(root, 'state') });
    driver.onLifecycleEvent((e) => events.push(e));
    driver.onGuestChange((view, aspect) => changes.push([aspect, view]));
    await driver.initHost('model-host');
  });

  afterAll(async () => {
    await driver?.close();
    await monitors?.closeAll();
    await guest?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('knows the guest after discovery: state, uuid, consoles, devices, vCPU threads', () => {
    const view = driver.guestView(ref());
    expect(view).toMatchObject({ name: guest.name, uuid: guest.uuid, status: 'running', powerState: PowerState.RUNNING, serial: { host: '127.0.0.1', port: serialPort } });
    expect(view?.vnc?.port).toBeGreaterThanOrEqual(5900);
    expect(view?.blockDevices.some((b) => b.file === guest.imagePath)).toBe(true);
    expect(view?.nics.length).toBeGreaterThan(0);
    expect(view?.vcpus.length).toBeGreaterThan(0);
    expect(view?.vcpus.every((v) => Number.isInteger(v.threadId) && v.threadId > 0)).toBe(true);
  });

  it('the running check, power state, consoles and console output cost no monitor command', async () => {
    let vncPort = 0;
    const sent = await counted(async () => {
      for (let i = 0; i < 20; i++) {
        expect((await driver.getInfo(ref())).state).toBe(PowerState.RUNNING);
        vncPort = (await driver.getVncConsole(ref())).port;
        expect((await driver.getSerialConsole(ref())).port).toBe(serialPort);
        expect((await driver.getConsoleOutput(ref())).toString('latin1')).toContain(FIXTURE_CONSOLE_LINE);
      }
    });
    expect(sent).toBe(0);
    // The port the model knows is the one QEMU reports when asked.
    const asked = (await monitors.execute<{ service: string }>(guest.socketPath, 'query-vnc')).service;
    expect(vncPort).toBe(Number(asked));
  });

  it('diagnostics cost at most two commands, and concurrent requests share one collection', async () => {
    let cpuTime = 0;
    const one = await counted(async () => {
      const d = await driver.getInstanceDiagnostics(ref());
      expect(d.state).toBe('running');
      cpuTime = d.cpuDetails[0]?.time ?? 0;
      expect(d.diskDetails.length).toBeGreaterThan(0);
      expect(d.memoryDetails.maximum).toBe(64);
    });
    expect(one).toBeGreaterThan(0);
    expect(one).toBeLessThanOrEqual(2);
    expect(cpuTime).toBeGreaterThan(0);
    const many = await counted(() => Promise.all(Array.from({ length: 8 }, () => driver.getInstanceDiagnostics(ref()))));
    expect(many).toBeLessThanOrEqual(2);
    expect(await counted(() => driver.getDiagnostics(ref()))).toBeLessThanOrEqual(2);
  });

  it('stays right across STOP and RESUME sent by someone else, and says why', async () => {
    await monitors.execute(guest.socketPath, 'stop');
    // QEMU sends STOP before its reply: the model knows as soon as the command returns.
    expect(await counted(async () => expect((await driver.getInfo(ref())).state).toBe(PowerState.PAUSED))).toBe(0);
    expect(driver.guestView(ref())).toMatchObject({ status: 'paused', reason: { event: 'STOP' } });
    await until('paused event', () => events.find((e) => e.transition === 'paused' && e.source === 'STOP'));
    expect(changes.some(([aspect, view]) => aspect === 'state' && view.status === 'paused')).toBe(true);
    await monitors.execute(guest.socketPath, 'cont');
    expect((await driver.getInfo(ref())).state).toBe(PowerState.RUNNING);
    expect(driver.guestView(ref())?.reason.event).toBe('RESUME');
  });

  it('a reset of a paused guest leaves it in prelaunch, with no event saying so; cont runs it', async () => {
    const mark = events.length;
    await monitors.execute(guest.socketPath, 'stop');
    await monitors.execute(guest.socketPath, 'system_reset');
    await until('prelaunch in the model', () => driver.guestView(ref())?.status === 'prelaunch');
    expect(driver.guestView(ref())?.reason).toMatchObject({ event: 'RESET', reason: 'host-qmp-system-reset', guest: false });
    // What QEMU itself says, asked directly.
    expect((await monitors.execute<{ status: string }>(guest.socketPath, 'query-status')).status).toBe('prelaunch');
    expect((await driver.getInfo(ref())).state).toBe(PowerState.PAUSED);
    await monitors.execute(guest.socketPath, 'cont');
    expect((await driver.getInfo(ref())).state).toBe(PowerState.RUNNING);
    expect(events.slice(mark).map((e) => e.transition)).toEqual(['paused', 'resumed']);
  });

  it('SHUTDOWN then the monitor gone: off once, with QEMU\'s reason; a relaunched QEMU gets a new model', async () => {
    const mark = events.length;
    const before = driver.guestView(ref())!;
    await monitors.execute(guest.socketPath, 'quit').catch(() => undefined);
    await until('offline in the model', () => driver.guestView(ref())?.status === 'offline');
    expect((await driver.getInfo(ref())).state).toBe(PowerState.SHUTDOWN);
    expect(events.slice(mark)).toMatchObject([{ transition: 'stopped', source: 'SHUTDOWN/host-qmp-quit' }]);
    expect(changes.some(([aspect, view]) => aspect === 'state' && view.status === 'shutdown' && view.reason.reason === 'host-qmp-quit')).toBe(true);
    await driver.powerOn(ref());
    const after = driver.guestView(ref())!;
    expect(after).toMatchObject({ status: 'running', uuid: guest.uuid });
    expect(after.connectedAt).toBeGreaterThanOrEqual(before.connectedAt);
    expect(after.vcpus[0]?.threadId).not.toBe(before.vcpus[0]?.threadId);
    expect(events.slice(mark).map((e) => e.transition)).toEqual(['stopped', 'started']);
  });

  it('after a reconnect it learns what changed while nobody was connected', async () => {
    await monitors.drop(guest.socketPath);
    // Someone else pauses the guest while novamon holds no connection.
    const other = await QmpConnection.connect(guest.socketPath, { connectTimeoutMs: TIMEOUT_MS });
    await other.execute('stop');
    await other.close();
    const mark = events.length;
    const loadCost = await counted(async () => expect((await driver.getInfo(ref())).state).toBe(PowerState.PAUSED));
    expect(loadCost).toBeGreaterThan(0);
    expect(events.slice(mark)).toMatchObject([{ transition: 'paused', source: 'reconnect' }]);
    // Loaded once per connection: the next questions are free again.
    expect(await counted(() => driver.getInfo(ref()))).toBe(0);
    await driver.unpause(ref());
    expect((await driver.getInfo(ref())).state).toBe(PowerState.RUNNING);
  });
});
