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
  type MonitorCommand,
  type PowerOffOptions,
  type RebootType,
  type Screenshot,
} from '../driver.js';
import { InstanceNameTemplate } from '../instance-name.js';
import { PowerState } from '../power-state.js';
import { FakeTransitions, guestPowerState, newFakeGuest, type FakeGuest, type FakeInstanceSpec, type FakeMethod } from './guest.js';
import { fakeDiagnostics, fakeHmp, fakeLegacyDiagnostics, fakeMac, fakeQmp } from './monitor.js';
import { fakeScreenshot } from './screen.js';

export type { FakeInstanceSpec, FakeMethod };

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
  private readonly t: FakeTransitions;
  private nextVncPort = 5900;
  private host: string | null = null;

  constructor(@inject(FakeDriverOptions) @optional() options?: FakeDriverOptions) {
    this.nameTemplate = options?.nameTemplate ?? new InstanceNameTemplate('instance-%08x');
    this.clock = options?.clock ?? Date.now;
    this.commandTimeoutSeconds = options?.commandTimeoutSeconds ?? 10;
    this.logger = options?.logger?.child({ component: 'fake-driver' }) ?? null;
    this.t = new FakeTransitions(this.clock, (event) => this.publish(event));
  }

  // ---- test controls -------------------------------------------------------------------------

  addInstance(spec: FakeInstanceSpec): void {
    const name = this.nameTemplate.validate(spec.name);
    this.guests.set(name, newFakeGuest(name, spec, this.clock(), () => ({ host: '127.0.0.1', port: this.nextVncPort++, internalAccessPath: null })));
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
    if (g.alive) this.t.processGone(g, 'SHUTDOWN/disconnect');
  }

  /** The guest powers itself off; QEMU stays alive in `shutdown` (-no-shutdown), as a real guest would. */
  guestShutdown(name: string): void {
    const g = this.mustGet({ name });
    if (g.alive && g.status !== 'shutdown') this.t.guestShutdown(g);
  }

  /** The guest kernel panics (QEMU's GUEST_PANICKED). */
  guestPanic(name: string): void {
    const g = this.mustGet({ name });
    if (g.alive) this.t.panic(g);
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
      .map((g) => ({ name: g.name, uuid: g.uuid, powerState: g.frozen ? PowerState.SHUTDOWN : guestPowerState(g) }));
  }

  async getInfo(instance: InstanceRef): Promise<InstanceInfo> {
    const g = this.enter('getInfo', instance);
    if (g.alive) this.monitor(g);
    return { state: guestPowerState(g) };
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
    return fakeDiagnostics(g, this.clock(), fakeMac(this.nameTemplate.parseId(g.name) ?? 0));
  }

  async getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics> {
    const g = this.enter('getDiagnostics', instance);
    this.requireDiagnosable(g, instance, 'get_diagnostics');
    return fakeLegacyDiagnostics(g, this.clock());
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
    if (options.timeout > 0 && g.acpi && g.status === 'running') this.t.guestShutdown(g);
    else this.t.processGone(g, 'SHUTDOWN/host-qmp-quit');
  }

  async powerOn(instance: InstanceRef): Promise<void> {
    const g = this.enter('powerOn', instance);
    if (!g.alive) {
      this.t.relaunch(g);
      return;
    }
    this.monitor(g);
    if (g.status === 'running') return;
    this.t.setRunning(g, g.status === 'paused' ? 'resumed' : 'started', 'RESUME');
  }

  async pause(instance: InstanceRef): Promise<void> {
    const g = this.enter('pause', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.status === 'paused') return;
    if (g.status !== 'running' && g.status !== 'suspended') throw new InstanceNotRunning(instance.uuid ?? g.name);
    this.t.pause(g);
  }

  async unpause(instance: InstanceRef): Promise<void> {
    const g = this.enter('unpause', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    if (g.status === 'running') return;
    // QEMU refuses `cont` until a shut-down or crashed guest is reset.
    if (g.status !== 'paused') throw new InstanceNotRunning(instance.uuid ?? g.name);
    this.t.setRunning(g, 'resumed', 'RESUME');
  }

  async reboot(instance: InstanceRef, type: RebootType): Promise<void> {
    const g = this.enter('reboot', instance);
    if (!g.alive) {
      // Nova's hard reboot recreates the guest, so rebooting a powered-off guest starts it.
      this.t.relaunch(g);
      return;
    }
    this.monitor(g);
    // SOFT on an ACPI-aware running guest: it reboots itself and keeps running. Otherwise (and for
    // HARD) a reset, then `cont` when the guest was not running.
    if (type === 'SOFT' && g.acpi && g.status === 'running') return;
    if (g.status === 'running') return;
    this.t.setRunning(g, g.status === 'paused' ? 'resumed' : 'started', 'RESUME');
  }

  async monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown> {
    const g = this.enter('monitorCommand', instance);
    this.requireAlive(g, instance);
    this.monitor(g);
    return command.kind === 'hmp' ? fakeHmp(g, command.commandLine) : fakeQmp(g, command.execute, this.t);
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

  private publish(event: LifecycleEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        // A listener's failure is its own business; the transition already happened.
        this.logger?.error({ err, instance: event.name, instance_uuid: event.uuid }, 'lifecycle listener failed');
      }
    }
  }
}
