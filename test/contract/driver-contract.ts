// The ComputeDriver contract suite: one set of behaviours every driver (fake, qemu, libvirt) must show,
// run from a small harness each driver's test file provides. Guests are shared across tests because a
// real guest takes seconds to boot under TCG; tests run in order and each leaves its guest running.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import {
  ConsoleTypeUnavailable,
  InstanceInvalidState,
  InstanceNotFound,
  InstanceNotRunning,
  InvalidInstanceName,
  MonitorCommandFailed,
  MonitorTimeout,
} from '../../src/exception.js';
import type { ComputeDriver, InstanceRef, LifecycleEvent, LifecycleTransition } from '../../src/virt/driver.js';
import { PowerState } from '../../src/virt/power-state.js';
import { FIXTURE_CONSOLE_LINE } from '../fixtures/boot-sector.js';

/** A guest the harness created; `ref` is what the suite passes to the driver. */
export interface ContractGuest {
  readonly ref: InstanceRef;
  /** The uuid the guest was created with (what discovery must report). */
  readonly uuid: string;
}

/**
 * What a driver's test file provides. Keep it small: the suite does everything else through the
 * ComputeDriver interface itself.
 */
export interface ContractHarness {
  /** The driver under test, not yet initialised (the suite calls initHost). */
  readonly driver: ComputeDriver;
  /**
   * Create a running guest the way the driver's hypervisor would: its serial console is logged and
   * prints FIXTURE_CONSOLE_LINE after boot, it has a VNC server, no TCP serial port, and it ignores
   * ACPI power-down requests (so a clean power off must fall back to a forced one). Called after initHost.
   */
  createGuest(): Promise<ContractGuest>;
  /** A name with the driver's instance_name_template shape that no guest has. */
  readonly unknownName: string;
  /** The driver's monitor command timeout in ms (bounds how long a frozen guest may hold a call). */
  readonly commandTimeoutMs: number;
  /** How long to wait for a fresh guest's console line and for lifecycle events (default 30 s / 10 s). */
  readonly bootTimeoutMs?: number;
  readonly eventTimeoutMs?: number;
  /** Console endpoints are real listeners (a hypervisor's); the fake driver's are made up. */
  readonly consolesListen?: boolean;
  /** Kill the guest's hypervisor process from outside (SIGKILL for QEMU). Omit if impossible. */
  killGuest?(guest: ContractGuest): Promise<void>;
  /** Make the guest's monitor stop answering (SIGSTOP for QEMU); resolves to a function that undoes it. */
  freezeGuest?(guest: ContractGuest): Promise<() => Promise<void>>;
  /** Remove every guest and close the driver. */
  teardown(): Promise<void>;
}

const BAD_NAMES = ['../x', '/etc/passwd', 'instance-0000\u00000001', `instance-${'0'.repeat(100)}1`, 'not-an-instance'];

export function driverContract(name: string, setup: () => Promise<ContractHarness>): void {
  describe(`ComputeDriver contract: ${name}`, () => {
    let h: ContractHarness;
    let driver: ComputeDriver;
    let guest: ContractGuest;
    const events: LifecycleEvent[] = [];
    let unsubscribe: () => void = () => undefined;

    const eventTimeout = () => h.eventTimeoutMs ?? 10_000;

    /** Resolves with the first event (already seen or arriving later) for `g` with `transition`. */
    async function expectEvent(g: ContractGuest, transition: LifecycleTransition, after: number): Promise<LifecycleEvent> {
      const deadline = Date.now() + eventTimeout();
      for (;;) {
        const hit = events.slice(after).find((e) => e.name === g.ref.name && e.transition === transition);
        if (hit) return hit;
        if (Date.now() > deadline) {
          const seen = events.map((e) => `${e.name}:${e.transition}:${e.source}`).join(', ');
          throw new Error(`no ${transition} event for ${g.ref.name} within ${eventTimeout()} ms (seen: ${seen || 'none'})`);
        }
        await sleep(50);
      }
    }

    async function consoleText(g: ContractGuest): Promise<string> {
      return (await driver.getConsoleOutput(g.ref)).toString('latin1');
    }

    async function waitForConsoleLine(g: ContractGuest): Promise<string> {
      const deadline = Date.now() + (h.bootTimeoutMs ?? 30_000);
      for (;;) {
        const text = await consoleText(g).catch(() => '');
        if (text.includes(FIXTURE_CONSOLE_LINE)) return text;
        if (Date.now() > deadline) throw new Error(`console of ${g.ref.name} never showed the fixture line`);
        await sleep(200);
      }
    }

    async function expectState(g: ContractGuest, state: PowerState): Promise<void> {
      expect((await driver.getInfo(g.ref)).state).toBe(state);
    }

    beforeAll(async () => {
      h = await setup();
      driver = h.driver;
      unsubscribe = driver.onLifecycleEvent((e) => events.push(e));
      await driver.initHost('contract-host');
      guest = await h.createGuest();
    });

    afterAll(async () => {
      unsubscribe();
      await h?.teardown();
    });

    describe('discovery and inspection', () => {
      it('lists the guest with its uuid and running state', async () => {
        const found = (await driver.listInstances()).find((i) => i.name === guest.ref.name);
        expect(found).toEqual({ name: guest.ref.name, uuid: guest.uuid, powerState: PowerState.RUNNING });
      });

      it('get_info reports RUNNING', async () => {
        await expectState(guest, PowerState.RUNNING);
      });

      it('console output shows the guest line, and reading does not consume it', async () => {
        await waitForConsoleLine(guest);
        const first = await driver.getConsoleOutput(guest.ref);
        const second = await driver.getConsoleOutput(guest.ref);
        expect(first.toString('latin1')).toContain(FIXTURE_CONSOLE_LINE);
        // The guest keeps printing, so the second read may be longer, but it starts with the first.
        expect(second.length).toBeGreaterThanOrEqual(first.length);
        expect(second.subarray(0, first.length).equals(first)).toBe(true);
      });

      it('instance diagnostics carry real figures', async () => {
        const d = await driver.getInstanceDiagnostics(guest.ref);
        expect(d.state).toBe('running');
        expect(d.driver).toBe('libvirt');
        expect(typeof d.hypervisor).toBe('string');
        expect(d.hypervisorOs).toBe('linux');
        expect(d.configDrive).toBe(false);
        expect(d.uptime).toBeGreaterThanOrEqual(0);
        expect(d.cpuDetails).toHaveLength(1);
        expect(d.cpuDetails[0]).toMatchObject({ id: 0 });
        expect(typeof d.cpuDetails[0]?.time).toBe('number');
        expect(d.diskDetails.length).toBeGreaterThanOrEqual(1);
        const disk = d.diskDetails[0]!;
        // The BIOS read the boot sector: at least one request and 512 bytes.
        expect(disk.readRequests).toBeGreaterThanOrEqual(1);
        expect(disk.readBytes).toBeGreaterThanOrEqual(512);
        expect(typeof disk.writeBytes).toBe('number');
        expect(typeof disk.writeRequests).toBe('number');
        expect(disk.errorsCount).toBe(0);
        expect(d.memoryDetails.maximum).toBe(64);
        expect(d.nicDetails.length).toBeGreaterThanOrEqual(1);
        expect(d.nicDetails[0]?.macAddress).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        for (const nic of d.nicDetails) {
          for (const v of [nic.rxOctets, nic.txOctets, nic.rxPackets, nic.txPackets]) expect(v === null || typeof v === 'number').toBe(true);
        }
      });

      it('legacy diagnostics use the libvirt keys', async () => {
        const d = await driver.getDiagnostics(guest.ref);
        expect(typeof d['cpu0_time']).toBe('number');
        expect(d['memory']).toBe(64 * 1024);
        const readKey = Object.keys(d).find((k) => k.endsWith('_read'));
        expect(readKey).toBeDefined();
        const disk = readKey!.slice(0, -'_read'.length);
        for (const suffix of ['_read', '_read_req', '_write', '_write_req', '_errors']) expect(typeof d[`${disk}${suffix}`]).toBe('number');
        expect(d[`${disk}_read`]).toBeGreaterThanOrEqual(512);
      });

      it('VNC console is a host and port (where the guest\'s VNC server greets)', async () => {
        const vnc = await driver.getVncConsole(guest.ref);
        expect(vnc.host).toMatch(/\S/);
        expect(Number.isInteger(vnc.port) && vnc.port > 0 && vnc.port < 65536).toBe(true);
        if (h.consolesListen) expect(await rfbGreeting(vnc.host, vnc.port)).toMatch(/^RFB 003\.00[38]\n$/);
      });

      it('serial console is unavailable without a TCP serial port', async () => {
        await expect(driver.getSerialConsole(guest.ref)).rejects.toBeInstanceOf(ConsoleTypeUnavailable);
      });
    });

    describe('monitor passthrough', () => {
      it('runs a QMP command and returns its value', async () => {
        const r = await driver.monitorCommand(guest.ref, { kind: 'qmp', execute: 'query-status' });
        expect(r).toMatchObject({ status: 'running', running: true });
      });

      it('runs an HMP command and returns its text', async () => {
        const r = await driver.monitorCommand(guest.ref, { kind: 'hmp', commandLine: 'info status' });
        expect(r).toMatch(/VM status: running/);
      });

      it('an unknown QMP command fails with QEMU\'s CommandNotFound', async () => {
        const err = await driver.monitorCommand(guest.ref, { kind: 'qmp', execute: 'no-such-command' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(MonitorCommandFailed);
        expect((err as MonitorCommandFailed).errorClass).toBe('CommandNotFound');
      });

      it('an unknown HMP command answers text, not an error', async () => {
        const r = await driver.monitorCommand(guest.ref, { kind: 'hmp', commandLine: 'no-such-hmp' });
        expect(r).toMatch(/unknown command/);
      });
    });

    describe('power', () => {
      it('pause and unpause show in get_info and as lifecycle events', async () => {
        const mark = events.length;
        await driver.pause(guest.ref);
        await expectState(guest, PowerState.PAUSED);
        const paused = await expectEvent(guest, 'paused', mark);
        expect(paused).toMatchObject({ uuid: guest.uuid, powerState: PowerState.PAUSED });
        expect(Math.abs(paused.timestamp - Date.now())).toBeLessThan(60_000);
        expect((await driver.getInstanceDiagnostics(guest.ref)).state).toBe('paused');

        const mark2 = events.length;
        await driver.unpause(guest.ref);
        await expectState(guest, PowerState.RUNNING);
        expect(await expectEvent(guest, 'resumed', mark2)).toMatchObject({ powerState: PowerState.RUNNING });
      });

      it('pausing twice and unpausing a running guest are harmless', async () => {
        await driver.pause(guest.ref);
        await driver.pause(guest.ref);
        await expectState(guest, PowerState.PAUSED);
        await driver.unpause(guest.ref);
        await driver.unpause(guest.ref);
        await expectState(guest, PowerState.RUNNING);
      });

      it('soft reboot leaves the guest running (falling back to hard when ACPI is ignored)', async () => {
        await driver.reboot(guest.ref, 'SOFT');
        await expectState(guest, PowerState.RUNNING);
      });

      it('hard reboot leaves the guest running, also from paused', async () => {
        await driver.reboot(guest.ref, 'HARD');
        await expectState(guest, PowerState.RUNNING);
        await driver.pause(guest.ref);
        await driver.reboot(guest.ref, 'HARD');
        await expectState(guest, PowerState.RUNNING);
      });

      it('forced power off leaves SHUTDOWN; the stopped guest refuses what needs it running', async () => {
        const mark = events.length;
        await driver.powerOff(guest.ref, { timeout: 0, retryInterval: 1 });
        await expectState(guest, PowerState.SHUTDOWN);
        expect(await expectEvent(guest, 'stopped', mark)).toMatchObject({ powerState: PowerState.SHUTDOWN });
        const listed = (await driver.listInstances()).find((i) => i.name === guest.ref.name);
        expect(listed?.powerState).toBe(PowerState.SHUTDOWN);
        await expect(driver.pause(guest.ref)).rejects.toBeInstanceOf(InstanceNotRunning);
        await expect(driver.getInstanceDiagnostics(guest.ref)).rejects.toBeInstanceOf(InstanceInvalidState);
        await expect(driver.getDiagnostics(guest.ref)).rejects.toBeInstanceOf(InstanceInvalidState);
        await expect(driver.getVncConsole(guest.ref)).rejects.toBeInstanceOf(ConsoleTypeUnavailable);
        // The console log outlives the guest, as Nova's libvirt driver serves it.
        expect(await consoleText(guest)).toContain(FIXTURE_CONSOLE_LINE);
        // Powering off an already powered-off guest is not an error.
        await driver.powerOff(guest.ref, { timeout: 0, retryInterval: 1 });
      });

      it('power on runs the guest again', async () => {
        const mark = events.length;
        await driver.powerOn(guest.ref);
        await expectState(guest, PowerState.RUNNING);
        expect(await expectEvent(guest, 'started', mark)).toMatchObject({ powerState: PowerState.RUNNING });
        await waitForConsoleLine(guest);
        expect((await driver.listInstances()).find((i) => i.name === guest.ref.name)).toMatchObject({
          uuid: guest.uuid,
          powerState: PowerState.RUNNING,
        });
      });

      it('clean power off of a guest that ignores ACPI falls back to forced, and power on works again', async () => {
        const mark = events.length;
        await driver.powerOff(guest.ref, { timeout: 2, retryInterval: 1 });
        await expectState(guest, PowerState.SHUTDOWN);
        await expectEvent(guest, 'stopped', mark);
        await driver.powerOn(guest.ref);
        await expectState(guest, PowerState.RUNNING);
      });

      it('power on of a running guest is harmless', async () => {
        await driver.powerOn(guest.ref);
        await expectState(guest, PowerState.RUNNING);
      });
    });

    describe('names and unknown guests', () => {
      const calls: [string, (d: ComputeDriver, ref: InstanceRef) => Promise<unknown>][] = [
        ['getInfo', (d, r) => d.getInfo(r)],
        ['getConsoleOutput', (d, r) => d.getConsoleOutput(r)],
        ['getInstanceDiagnostics', (d, r) => d.getInstanceDiagnostics(r)],
        ['getDiagnostics', (d, r) => d.getDiagnostics(r)],
        ['getVncConsole', (d, r) => d.getVncConsole(r)],
        ['getSerialConsole', (d, r) => d.getSerialConsole(r)],
        ['powerOff', (d, r) => d.powerOff(r, { timeout: 0, retryInterval: 1 })],
        ['powerOn', (d, r) => d.powerOn(r)],
        ['pause', (d, r) => d.pause(r)],
        ['unpause', (d, r) => d.unpause(r)],
        ['reboot', (d, r) => d.reboot(r, 'HARD')],
        ['monitorCommand', (d, r) => d.monitorCommand(r, { kind: 'qmp', execute: 'query-status' })],
      ];

      it.each(calls)('%s refuses bad names with InvalidInstanceName', async (_method, call) => {
        for (const bad of BAD_NAMES) {
          await expect(call(driver, { name: bad }), JSON.stringify(bad)).rejects.toBeInstanceOf(InvalidInstanceName);
        }
      });

      it.each(calls)('%s of an unknown guest raises InstanceNotFound', async (_method, call) => {
        await expect(call(driver, { name: h.unknownName })).rejects.toBeInstanceOf(InstanceNotFound);
      });

      it('the unknown guest is not listed', async () => {
        expect((await driver.listInstances()).map((i) => i.name)).not.toContain(h.unknownName);
      });
    });

    describe('a guest whose hypervisor process misbehaves', () => {
      let victim: ContractGuest;

      beforeAll(async () => {
        victim = await h.createGuest();
        await expectState(victim, PowerState.RUNNING);
      });

      // A call that needs the monitor: get_info may be answered from state the driver keeps (libvirt's
      // domain state, the qemu driver's event-fed model), so it is no probe of a frozen monitor.
      const queryStatus = () => driver.monitorCommand(victim.ref, { kind: 'qmp', execute: 'query-status' }) as Promise<{ status?: string }>;

      it('a frozen monitor raises MonitorTimeout within the command timeout', async (ctx) => {
        if (!h.freezeGuest) return ctx.skip();
        const thaw = await h.freezeGuest(victim);
        try {
          const started = Date.now();
          const err = await queryStatus().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(MonitorTimeout);
          expect(Date.now() - started).toBeLessThan(h.commandTimeoutMs + 3000);
        } finally {
          await thaw();
        }
        // Once the process runs again the guest answers again.
        const deadline = Date.now() + h.commandTimeoutMs * 3 + 5000;
        for (;;) {
          const reply = await queryStatus().catch(() => null);
          if (reply?.status === 'running') break;
          if (Date.now() > deadline) throw new Error('guest did not answer again after thawing');
          await sleep(250);
        }
      });

      it('a killed guest is reported stopped, refuses commands, and can be powered on again', async (ctx) => {
        if (!h.killGuest) return ctx.skip();
        const mark = events.length;
        await h.killGuest(victim);
        const stopped = await expectEvent(victim, 'stopped', mark);
        expect(stopped.powerState).toBe(PowerState.SHUTDOWN);
        const info = await driver.getInfo(victim.ref).catch((e: unknown) => e);
        if (info instanceof Error) expect(info).toBeInstanceOf(InstanceNotFound);
        else expect(info).toMatchObject({ state: PowerState.SHUTDOWN });
        for (const call of [
          () => driver.pause(victim.ref),
          () => driver.monitorCommand(victim.ref, { kind: 'qmp', execute: 'query-status' }),
        ]) {
          const err = await call().catch((e: unknown) => e);
          expect(err instanceof InstanceNotRunning || err instanceof InstanceNotFound, String(err)).toBe(true);
        }
        // The driver recorded how the guest was started, so it can start it again.
        await driver.powerOn(victim.ref);
        await expectState(victim, PowerState.RUNNING);
      });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The 12-byte ProtocolVersion a VNC server sends first (RFC 6143 7.1.1). */
async function rfbGreeting(host: string, port: number): Promise<string> {
  const socket = net.connect({ host, port });
  try {
    return await new Promise<string>((resolve, reject) => {
      let got = Buffer.alloc(0);
      socket.setTimeout(10_000, () => reject(new Error(`no RFB greeting from ${host}:${port} within 10 s`)));
      socket.on('error', reject);
      socket.on('close', () => reject(new Error(`${host}:${port} closed before its RFB greeting`)));
      socket.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 12) resolve(got.subarray(0, 12).toString('latin1'));
      });
    });
  } finally {
    socket.destroy();
  }
}
