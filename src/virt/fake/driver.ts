// The in-memory ComputeDriver: a real, deterministic implementation of the contract with no hypervisor.
// Each guest is modelled as QEMU is (a process that may be alive or gone, and a run status), so power
// transitions, errors and lifecycle events follow the same rules as the qemu driver's.

import { inject, injectable, optional } from 'inversify';
import type { Logger } from 'pino';
import {
  ConsoleNotAvailable,
  ConsoleTypeUnavailable,
  InstanceInvalidState,
  InstanceNotFound,
  InstanceNotRunning,
  InvalidInstanceName,
  MonitorCommandFailed,
  MonitorTimeout,
  type NovaException,
} from '../../exception.js';
import {
  MAX_CONSOLE_BYTES,
  type ComputeDriver,
  type ConsoleEndpoint,
  type Diagnostics,
  type DiscoveredInstance,
  type InstanceInfo,
  type InstanceRef,
  type LegacyDiagnostics,
  type LifecycleEvent,
  type LifecycleListener,
  type LifecycleTransition,
  type MonitorCommand,
  type PowerOffOptions,
  type RebootType,
  type Screenshot,
} from '../driver.js';
import { InstanceNameTemplate } from '../instance-name.js';
import { PowerState, powerStateFromQemuStatus, powerStateName } from '../power-state.js';
import { fakeScreenshot } from './screen.js';

export const FakeDriverOptions = Symbol.for('novamon.FakeDriverOptions');
export interface FakeDriverOptions {
  /** Names are validated against this template (default Nova's `instance-%08x`). */
  nameTemplate?: InstanceNameTemplate;
  /** Epoch milliseconds; inject a fake clock for deterministic uptime and CPU time. */
  clock?: () => number;
  /** Seconds reported in MonitorTimeout for a frozen guest. */
  commandTimeoutSeconds?: number;
  logger?: Logger;
}

/** A guest to add to the fake hypervisor. */
export interface FakeInstanceSpec {
  name: string;
  uuid?: string | null;
  /** RUNNING (default), PAUSED, SHUTDOWN (process gone), CRASHED or SUSPENDED. */
  powerState?: PowerState;
  /** Serial console log so far; omitted = the guest has no logged serial port (ConsoleNotAvailable). */
  consoleOutput?: string | Buffer;
  /** VNC server; default 127.0.0.1:5900+n; null = no VNC. */
  vnc?: ConsoleEndpoint | null;
  /** TCP serial port; default none. */
  serial?: ConsoleEndpoint | null;
  /** Does the guest obey an ACPI power-down request? Default false (like the fixture guest). */
  acpi?: boolean;
  vcpus?: number;
  memoryMiB?: number;
}

type FakeMethod = Exclude<keyof ComputeDriver, 'type'>;

interface FakeGuest {
  name: string;
  uuid: string | null;
  /** False once "QEMU" has exited: the guest is powered off and can only be started again. */
  alive: boolean;
  /** QEMU run status while alive (running, paused, shutdown, guest-panicked, suspended). */
  status: string;
  console: Buffer | null;
  vnc: ConsoleEndpoint | null;
  serial: ConsoleEndpoint | null;
  acpi: boolean;
  vcpus: number;
  memoryMiB: number;
  frozen: boolean;
  startedAt: number;
  /** CPU time consumed before the current running stretch, in ms, and when that stretch began. */
  cpuMs: number;
  runningSince: number | null;
  faults: Map<FakeMethod, NovaException>;
  nmis: number;
}

const statusForPowerState: Record<number, string> = {
  [PowerState.RUNNING]: 'running',
  [PowerState.PAUSED]: 'paused',
  [PowerState.CRASHED]: 'guest-panicked',
  [PowerState.SUSPENDED]: 'suspended',
};

@injectable()
export class FakeDriver implements ComputeDriver {
  readonly type = 'fake';
  /** Every driver call, in order, for tests that check what the layer above asked for. */
  readonly calls: { method: FakeMethod; name?: string }[] = [];
  private readonly guests = new Map<string, FakeGuest>();
  private readonly listeners = new Set<LifecycleListener>();
  private readonly nameTemplate: InstanceNameTemplate;
  private readonly clock: () => number;
  private readonly commandTimeoutSeconds: number;
  private readonly logger: Logger | null;
  private nextVncPort = 5900;
  private host: string | null = null;

  constructor(@inject(FakeDriverOptions) @optional() options?: FakeDriverOptions) {
    this.nameTemplate = options?.nameTemplate ?? new InstanceNameTemplate('instance-%08x');
    this.clock = options?.clock ?? Date.now;
    this.commandTimeoutSeconds = options?.commandTimeoutSeconds ?? 10;
    this.logger = options?.logger?.child({ component: 'fake-driver' }) ?? null;
  }

  // ---- test controls -------------------------------------------------------------------------

  addInstance(spec: FakeInstanceSpec): void {
    const name = this.nameTemplate.validate(spec.name);
    const state = spec.powerState ?? PowerState.RUNNING;
    const now = this.clock();
    const alive = state !== PowerState.SHUTDOWN && state !== PowerState.NOSTATE;
    const status = statusForPowerState[state] ?? 'shutdown';
    this.guests.set(name, {
      name,
      uuid: spec.uuid ?? null,
      alive,
      status,
      console: spec.consoleOutput === undefined ? null : Buffer.from(spec.consoleOutput),
      vnc: spec.vnc === undefined ? { host: '127.0.0.1', port: this.nextVncPort++, internalAccessPath: null } : spec.vnc,
      serial: spec.serial ?? null,
      acpi: spec.acpi ?? false,
      vcpus: spec.vcpus ?? 1,
      memoryMiB: spec.memoryMiB ?? 64,
      frozen: false,
      startedAt: now,
      cpuMs: 0,
      runningSince: alive && status === 'running' ? now : null,
      faults: new Map(),
      nmis: 0,
    });
  }

  removeInstance(name: string): void {
    this.guests.delete(name);
  }

  hasInstance(name: string): boolean {
    return this.guests.has(name);
  }

  appendConsoleOutput(name: string, text: string | Buffer): void {
    const g = this.mustGet({ name });
    g.console = Buffer.concat([g.console ?? Buffer.alloc(0), Buffer.from(text)]);
  }

  /** The "QEMU process" dies (killed from outside): the guest is off; a `stopped` event follows. */
  killProcess(name: string): void {
    const g = this.mustGet({ name });
    if (!g.alive) return;
    this.stopClock(g);
    g.alive = false;
    g.frozen = false;
    g.status = 'shutdown';
    this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/disconnect');
  }

  /** The guest powers itself off; QEMU stays alive in `shutdown` (-no-shutdown), as a real guest would. */
  guestShutdown(name: string): void {
    const g = this.mustGet({ name });
    if (!g.alive || g.status === 'shutdown') return;
    this.stopClock(g);
    g.status = 'shutdown';
    this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/guest-shutdown');
  }

  /** The guest kernel panics (QEMU's GUEST_PANICKED). */
  guestPanic(name: string): void {
    const g = this.mustGet({ name });
    if (!g.alive) return;
    this.stopClock(g);
    g.status = 'guest-panicked';
    this.emit(g, 'crashed', PowerState.CRASHED, 'GUEST_PANICKED');
  }

  /** The monitor stops answering (like a SIGSTOPped QEMU): monitor-backed calls raise MonitorTimeout. */
  freeze(name: string): void {
    this.mustGet({ name }).frozen = true;
  }

  thaw(name: string): void {
    this.mustGet({ name }).frozen = false;
  }

  /** The next call of `method` on this guest throws `error` (once). */
  injectFault(name: string, method: FakeMethod, error: NovaException): void {
    this.mustGet({ name }).faults.set(method, error);
  }

  // ---- ComputeDriver ---------------------------------------------------------------------------

  async initHost(host: string): Promise<void> {
    this.calls.push({ method: 'initHost' });
    this.host = host;
  }

  /** The host name initHost was given (null before). */
  get initialisedHost(): string | null {
    return this.host;
  }

  async listInstances(): Promise<DiscoveredInstance[]> {
    this.calls.push({ method: 'listInstances' });
    return [...this.guests.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((g) => ({ name: g.name, uuid: g.uuid, powerState: g.frozen ? PowerState.SHUTDOWN : this.powerState(g) }));
  }

  async getInfo(instance: InstanceRef): Promise<InstanceInfo> {
    const g = this.enter('getInfo', instance);
    if (g.alive) this.monitor(g);
    return { state: this.powerState(g) };
  }

  async getConsoleOutput(instance: InstanceRef): Promise<Buffer> {
    const g = this.enter('getConsoleOutput', instance);
    // Like a chardev log file: readable even while the guest is off, never consumed by reading.
    if (g.console === null) throw new ConsoleNotAvailable();
    return Buffer.from(g.console.subarray(Math.max(0, g.console.length - MAX_CONSOLE_BYTES)));
  }

  async getInstanceDiagnostics(instance: InstanceRef): Promise<Diagnostics> {
    const g = this.enter('getInstanceDiagnostics', instance);
    this.requireDiagnosable(g, instance, 'get_instance_diagnostics');
    const now = this.clock();
    const cpuNs = Math.round(this.cpuMs(g, now) * 1e6);
    return {
      state: powerStateName(this.powerState(g)) as Diagnostics['state'],
      driver: 'libvirt',
      hypervisor: 'fake',
      hypervisorOs: 'linux',
      uptime: Math.floor((now - g.startedAt) / 1000),
      configDrive: false,
      cpuDetails: Array.from({ length: g.vcpus }, (_, id) => ({ id, time: cpuNs, utilisation: null })),
      nicDetails: [
        {
          macAddress: this.mac(g),
          rxOctets: null, rxErrors: null, rxDrop: null, rxPackets: null, rxRate: null,
          txOctets: null, txErrors: null, txDrop: null, txPackets: null, txRate: null,
        },
      ],
      diskDetails: [{ device: 'vda', readBytes: 512, readRequests: 1, writeBytes: 0, writeRequests: 0, errorsCount: 0 }],
      memoryDetails: { maximum: g.memoryMiB, used: null },
    };
  }

  async getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics> {
    const g = this.enter('getDiagnostics', instance);
    this.requireDiagnosable(g, instance, 'get_diagnostics');
    const cpuNs = Math.round(this.cpuMs(g, this.clock()) * 1e6);
    const out: LegacyDiagnostics = {};
    for (let i = 0; i < g.vcpus; i++) out[`cpu${i}_time`] = cpuNs;
    Object.assign(out, { vda_read: 512, vda_read_req: 1, vda_write: 0, vda_write_req: 0, vda_errors: 0 });
    out['memory'] = g.memoryMiB * 1024;
    out['memory-actual'] = g.memoryMiB * 1024;
    return out;
  }

  async getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    const g = this.enter('getVncConsole', instance);
    if (!g.alive || g.vnc === null) throw new ConsoleTypeUnavailable('vnc');
    this.monitor(g);
    return { ...g.vnc };
  }

  async getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    const g = this.enter('getSerialConsole', instance);
    if (!g.alive || g.serial === null) throw new ConsoleTypeUnavailable('serial');
    this.monitor(g);
    return { ...g.serial };
  }

  async powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void> {
    const g = this.enter('powerOff', instance);
    if (!g.alive) return;
    this.monitor(g);
    if (g.status === 'shutdown') return;
    // Clean: an ACPI-aware running guest powers itself off (QEMU stays, in `shutdown`). Anything else
    // falls back to a forced off once the timeout would have passed; the fake does not sleep for it.
    if (options.timeout > 0 && g.acpi && g.status === 'running') {
      this.stopClock(g);
      g.status = 'shutdown';
      this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/guest-shutdown');
      return;
    }
    this.stopClock(g);
    g.alive = false;
    g.status = 'shutdown';
    this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/host-qmp-quit');
  }

  async powerOn(instance: InstanceRef): Promise<void> {
    const g = this.enter('powerOn', instance);
    if (!g.alive) {
      this.relaunch(g);
      return;
    }
    this.monitor(g);
    if (g.status === 'running') return;
    this.setRunning(g, g.status === 'paused' ? 'resumed' : 'started', 'RESUME');
  }

  /** A new "QEMU" for a powered-off guest, as the qemu driver relaunches one from its recorded command line. */
  private relaunch(g: FakeGuest): void {
    g.alive = true;
    g.startedAt = this.clock();
    g.cpuMs = 0;
    this.setRunning(g, 'started', 'relaunch');
  }

  async pause(instance: InstanceRef): Promise<void> {
    const g = this.enter('pause', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.status === 'paused') return;
    if (g.status !== 'running' && g.status !== 'suspended') throw new InstanceNotRunning(instance.uuid ?? g.name);
    this.stopClock(g);
    g.status = 'paused';
    this.emit(g, 'paused', PowerState.PAUSED, 'STOP');
  }

  async unpause(instance: InstanceRef): Promise<void> {
    const g = this.enter('unpause', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.status === 'running') return;
    // QEMU refuses `cont` until a shut-down or crashed guest is reset.
    if (g.status !== 'paused') throw new InstanceNotRunning(instance.uuid ?? g.name);
    this.setRunning(g, 'resumed', 'RESUME');
  }

  async reboot(instance: InstanceRef, type: RebootType): Promise<void> {
    const g = this.enter('reboot', instance);
    if (!g.alive) {
      // Nova's hard reboot recreates the guest, so rebooting a powered-off guest starts it.
      this.relaunch(g);
      return;
    }
    this.monitor(g);
    // SOFT on an ACPI-aware running guest: it reboots itself and keeps running. Otherwise (and for
    // HARD) a reset, then `cont` when the guest was not running.
    if (type === 'SOFT' && g.acpi && g.status === 'running') return;
    if (g.status === 'running') return;
    this.setRunning(g, g.status === 'paused' ? 'resumed' : 'started', 'RESUME');
  }

  async monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown> {
    const g = this.enter('monitorCommand', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (command.kind === 'hmp') return this.hmp(g, command.commandLine);
    switch (command.execute) {
      case 'query-status':
        return { status: g.status, singlestep: false, running: g.status === 'running' };
      case 'query-name':
        return { name: g.name };
      case 'query-uuid':
        return { UUID: g.uuid ?? '00000000-0000-0000-0000-000000000000' };
      case 'query-kvm':
        return { enabled: false, present: false };
      case 'query-vnc':
        return g.vnc
          ? { enabled: true, auth: 'none', family: 'ipv4', clients: [], service: String(g.vnc.port), host: g.vnc.host }
          : { enabled: false };
      case 'stop':
        if (g.status === 'running') {
          this.stopClock(g);
          g.status = 'paused';
          this.emit(g, 'paused', PowerState.PAUSED, 'STOP');
        }
        return {};
      case 'cont':
        if (g.status === 'shutdown' || g.status === 'guest-panicked') {
          throw new MonitorCommandFailed('GenericError', 'Resetting the Virtual Machine is required');
        }
        if (g.status !== 'running') this.setRunning(g, 'resumed', 'RESUME');
        return {};
      case 'system_reset':
      case 'system_powerdown':
        if (command.execute === 'system_powerdown' && g.acpi && g.status === 'running') {
          this.stopClock(g);
          g.status = 'shutdown';
          this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/guest-shutdown');
        }
        return {};
      default:
        throw new MonitorCommandFailed('CommandNotFound', `The command ${command.execute} has not been found`);
    }
  }

  /** Screens need a display: a guest without VNC has none. */
  async screenshot(instance: InstanceRef): Promise<Screenshot> {
    const g = this.enter('screenshot', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.vnc === null) throw new ConsoleNotAvailable();
    return fakeScreenshot();
  }

  async triggerCrashDump(instance: InstanceRef): Promise<void> {
    const g = this.enter('triggerCrashDump', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.status === 'shutdown') throw new InstanceNotRunning(instance.uuid ?? g.name);
    g.nmis++;
  }

  /** NMIs injected into the guest so far. */
  nmiCount(name: string): number {
    return this.mustGet({ name }).nmis;
  }

  onLifecycleEvent(listener: LifecycleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  // ---- internals -------------------------------------------------------------------------------

  /** Validates the name, records the call, finds the guest and fires an injected fault. */
  private enter(method: FakeMethod, instance: InstanceRef): FakeGuest {
    const name = this.nameTemplate.validate(instance.name);
    this.calls.push({ method, name });
    const g = this.mustGet({ ...instance, name });
    const fault = g.faults.get(method);
    if (fault) {
      g.faults.delete(method);
      throw fault;
    }
    return g;
  }

  private mustGet(instance: InstanceRef): FakeGuest {
    if (typeof instance.name !== 'string') throw new InvalidInstanceName(String(instance.name), 'not a string');
    const g = this.guests.get(instance.name);
    if (!g) throw new InstanceNotFound(instance.uuid ?? instance.name);
    return g;
  }

  /** A call that needs the monitor: a frozen guest times out like a stopped QEMU would. */
  private monitor(g: FakeGuest): void {
    if (g.frozen) throw new MonitorTimeout(g.name, this.commandTimeoutSeconds);
  }

  private requireAlive(g: FakeGuest, instance: InstanceRef): void {
    if (!g.alive) throw new InstanceNotRunning(instance.uuid ?? g.name);
  }

  private requireDiagnosable(g: FakeGuest, instance: InstanceRef, method: string): void {
    if (!g.alive || g.status === 'shutdown') {
      throw new InstanceInvalidState(instance.uuid ?? g.uuid ?? g.name, 'power_state', 'shutdown', method);
    }
    this.monitor(g);
  }

  private powerState(g: FakeGuest): PowerState {
    return g.alive ? powerStateFromQemuStatus(g.status) : PowerState.SHUTDOWN;
  }

  private setRunning(g: FakeGuest, transition: LifecycleTransition, source: string): void {
    g.status = 'running';
    g.runningSince = this.clock();
    this.emit(g, transition, PowerState.RUNNING, source);
  }

  private stopClock(g: FakeGuest): void {
    if (g.runningSince !== null) g.cpuMs += this.clock() - g.runningSince;
    g.runningSince = null;
  }

  private cpuMs(g: FakeGuest, now: number): number {
    return g.cpuMs + (g.runningSince === null ? 0 : now - g.runningSince);
  }

  private mac(g: FakeGuest): string {
    const id = this.nameTemplate.parseId(g.name) ?? 0;
    return `52:54:00:${[16, 8, 0].map((s) => ((id >> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
  }

  private hmp(g: FakeGuest, line: string): string {
    const cmd = line.trim();
    if (cmd === 'info status') {
      const shown = g.status === 'running' || g.status === 'paused' ? g.status : `paused (${g.status})`;
      return `VM status: ${shown}\r\n`;
    }
    if (cmd === 'info name') return `${g.name}\r\n`;
    return `unknown command: '${cmd.split(/\s+/)[0] ?? ''}'\r\n`;
  }

  private emit(g: FakeGuest, transition: LifecycleTransition, powerState: PowerState, source: string): void {
    const event: LifecycleEvent = { name: g.name, uuid: g.uuid, transition, powerState, timestamp: this.clock(), source };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        // A listener's failure is its own business; the transition already happened.
        this.logger?.error({ err, instance: g.name, instance_uuid: g.uuid }, 'lifecycle listener failed');
      }
    }
  }
}
