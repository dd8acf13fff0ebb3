// The direct QMP ComputeDriver: guests are QEMU processes whose monitor sockets live in instances_path as
// `<name>.monitor`. Host-wide concerns live here (discovery, lifecycle events, name validation, per-guest
// serialisation); one guest's operations are in guest.ts, figures in diagnostics.ts, consoles in console.ts.

import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import {
  ConsoleNotAvailable,
  ConsoleTypeUnavailable,
  InstanceInvalidState,
  InstanceNotFound,
  MonitorCommandFailed,
} from '../../exception.js';
import type { QmpEvent } from '../../qmp/connection.js';
import type { QmpMonitorRegistry } from '../../qmp/monitor-registry.js';
import type {
  ComputeDriver,
  ConsoleEndpoint,
  Diagnostics,
  DiscoveredInstance,
  InstanceInfo,
  InstanceRef,
  LegacyDiagnostics,
  LifecycleEvent,
  LifecycleListener,
  MonitorCommand,
  PowerOffOptions,
  RebootType,
  Screenshot,
} from '../driver.js';
import type { InstanceNameTemplate } from '../instance-name.js';
import { PowerState, powerStateFromQemuStatus } from '../power-state.js';
import { consoleLogFilesFromCmdline, readTail, serialEndpoint, vncEndpoint, type ChardevInfo, type QueryVncReply } from './console.js';
import { collectGuestStats, toDiagnostics, toLegacyDiagnostics, type GuestStats } from './diagnostics.js';
import { GuestOffline } from './errors.js';
import { eventTimestampMs, transitionBetween, transitionFor } from './events.js';
import { QemuGuest, type QemuContext } from './guest.js';
import { readCmdline } from './proc.js';
import { guestScreenshot, guestTriggerCrashDump } from './forensics.js';

export const QemuDriverOptions = Symbol.for('novamon.QemuDriverOptions');
export interface QemuDriverOptions {
  /** Directory of `<name>.monitor` sockets (and, by convention, `<name>.console.log` and `<name>.pid`). */
  instancesPath: string;
  nameTemplate: InstanceNameTemplate;
  monitors: QmpMonitorRegistry;
  commandTimeoutMs: number;
  /** This compute host's name (errors name it); initHost's argument replaces it. */
  host?: string;
  logger: Logger;
  /** Where the driver keeps its records of guests' command lines (for relaunching). */
  stateDir: string;
  /** How long a soft reboot waits for the guest to shut down before rebooting hard (Nova: 120 s). */
  softRebootWaitSeconds?: number;
  /** Address consoles are reached on when QEMU listens on a wildcard (Nova's server_proxyclient_address). */
  proxyClientAddress?: string;
}

const UUID_ZERO = '00000000-0000-0000-0000-000000000000';
const DISCOVERY_CONCURRENCY = 8;

@injectable()
export class QemuDriver implements ComputeDriver {
  readonly type = 'qemu';
  private readonly instancesPath: string;
  private readonly nameTemplate: InstanceNameTemplate;
  private readonly monitors: QmpMonitorRegistry;
  private readonly logger: Logger;
  private readonly proxyClientAddress: string;
  private readonly ctx: QemuContext;
  private hostName: string;
  private readonly listeners = new Set<LifecycleListener>();
  /** The power state we last reported (or first saw) per guest: gives QMP events their meaning. */
  private readonly tracked = new Map<string, PowerState>();
  private readonly uuids = new Map<string, string | null>();
  private readonly recordedPids = new Map<string, number>();
  /** Guests inspected on their current connection, and inspections in flight. */
  private readonly inspected = new Set<string>();
  private readonly inspecting = new Map<string, Promise<void>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private unsubscribe: (() => void) | null = null;
  private watcher: FSWatcher | null = null;
  private closed = false;

  constructor(@inject(QemuDriverOptions) opts: QemuDriverOptions) {
    this.instancesPath = path.resolve(opts.instancesPath);
    this.nameTemplate = opts.nameTemplate;
    this.monitors = opts.monitors;
    this.logger = opts.logger.child({ component: 'qemu-driver' });
    this.hostName = opts.host ?? os.hostname();
    this.proxyClientAddress = opts.proxyClientAddress ?? '127.0.0.1';
    const pids = new Map<string, number>();
    this.ctx = {
      instancesPath: this.instancesPath,
      stateDir: path.resolve(opts.stateDir),
      monitors: opts.monitors,
      commandTimeoutMs: opts.commandTimeoutMs,
      softRebootWaitMs: (opts.softRebootWaitSeconds ?? 120) * 1000,
      logger: this.logger,
      host: () => this.hostName,
      inspect: (g, fresh) => this.inspect(g, fresh),
      pids,
      pidVerifiedFor: new Map(),
      knownUuid: (name) => this.uuids.get(name) ?? null,
      observedOffline: (name) => this.observe(name, PowerState.SHUTDOWN, 'SHUTDOWN/disconnect', false),
    };
  }

  // ---- host ----------------------------------------------------------------------------------

  async initHost(host: string): Promise<void> {
    this.hostName = host;
    await mkdir(this.ctx.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(this.instancesPath, { recursive: true });
    this.unsubscribe ??= this.monitors.subscribe((socketPath, event) => this.onMonitorEvent(socketPath, event));
    // Discovery connects to every live guest, and those connections stay open so events flow.
    const found = await this.listInstances();
    this.logger.info({ host, guests: found.length }, 'qemu driver ready');
    this.watchInstancesPath();
  }

  async listInstances(): Promise<DiscoveredInstance[]> {
    const names = new Set<string>();
    for (const entry of await readdirOrEmpty(this.instancesPath)) {
      if (entry.endsWith('.monitor')) names.add(entry.slice(0, -'.monitor'.length));
    }
    const powered = new Set<string>();
    for (const entry of await readdirOrEmpty(this.ctx.stateDir)) {
      if (entry.endsWith('.json')) powered.add(entry.slice(0, -'.json'.length));
    }
    const candidates = [...new Set([...names, ...powered])].filter((n) => this.nameTemplate.matches(n)).sort();
    const results: (DiscoveredInstance | null)[] = [];
    for (let i = 0; i < candidates.length; i += DISCOVERY_CONCURRENCY) {
      const batch = candidates.slice(i, i + DISCOVERY_CONCURRENCY);
      results.push(...(await Promise.all(batch.map((n) => this.discover(n, names.has(n))))));
    }
    return results.filter((r): r is DiscoveredInstance => r !== null);
  }

  private async discover(name: string, hasSocket: boolean): Promise<DiscoveredInstance | null> {
    const g = new QemuGuest(this.ctx, name);
    const record = await g.record();
    if (!hasSocket) {
      // Without a socket only guests we powered off ourselves are listed (we can start them again).
      return record?.poweredOff ? { name, uuid: this.uuids.get(name) ?? record.uuid, powerState: PowerState.SHUTDOWN } : null;
    }
    try {
      const status = await g.status();
      if (status === 'offline') return { name, uuid: this.uuids.get(name) ?? record?.uuid ?? null, powerState: PowerState.SHUTDOWN };
      // Ask again when an earlier look found none: a guest keeps its own uuid, never one we invent.
      if (!this.uuids.get(name)) await this.learnUuid(g);
      return { name, uuid: this.uuids.get(name) ?? null, powerState: powerStateFromQemuStatus(status) };
    } catch (err) {
      // A socket nobody answers on is a guest we cannot reach: report it off rather than hide it.
      this.logger.warn({ err, instance: name }, 'guest monitor did not answer during discovery');
      return { name, uuid: this.uuids.get(name) ?? record?.uuid ?? null, powerState: PowerState.SHUTDOWN };
    }
  }

  private async learnUuid(g: QemuGuest): Promise<string | null> {
    const { UUID } = await g.execDirect<{ UUID: string }>('query-uuid');
    const uuid = UUID && UUID !== UUID_ZERO ? UUID : null;
    this.uuids.set(g.name, uuid);
    return uuid;
  }

  /**
   * Once per connection, after a command succeeded: learn the guest's uuid and state and record its
   * command line. A failure is logged and retried after the next successful command.
   */
  private async inspect(g: QemuGuest, freshConnection: boolean): Promise<void> {
    if (freshConnection) this.inspected.delete(g.name);
    if (this.inspected.has(g.name)) return;
    let run = this.inspecting.get(g.name);
    if (!run) {
      run = this.inspectNow(g)
        .then(() => {
          this.inspected.add(g.name);
        })
        .catch((err: unknown) => this.logger.warn({ err, instance: g.name }, 'inspecting a newly connected guest failed'))
        .finally(() => this.inspecting.delete(g.name));
      this.inspecting.set(g.name, run);
    }
    await run;
  }

  private async inspectNow(g: QemuGuest): Promise<void> {
    const uuid = await this.learnUuid(g);
    const { status } = await g.execDirect<{ status: string }>('query-status');
    this.observe(g.name, powerStateFromQemuStatus(status), 'reconnect', false);
    const pid = await g.pid();
    if (pid !== null && this.recordedPids.get(g.name) !== pid) {
      if (await g.recordCommandLine(uuid, false)) this.recordedPids.set(g.name, pid);
    }
  }

  /** New sockets appearing after initHost are connected to at once, so their events flow too. */
  private watchInstancesPath(): void {
    if (this.watcher || this.closed) return;
    try {
      this.watcher = watch(this.instancesPath, (_type, filename) => {
        const file = filename?.toString();
        if (!file?.endsWith('.monitor')) return;
        const name = file.slice(0, -'.monitor'.length);
        if (!this.nameTemplate.matches(name) || this.monitors.has(path.join(this.instancesPath, file))) return;
        // QEMU creates the socket before it listens on it; give it a moment.
        setTimeout(() => {
          if (this.closed) return;
          new QemuGuest(this.ctx, name).status().catch((err: unknown) => this.logger.debug({ err, instance: name }, 'connecting to a new guest failed'));
        }, 250).unref();
      });
      this.watcher.on('error', (err) => this.logger.warn({ err }, 'watching instances_path failed'));
      this.watcher.unref();
    } catch (err) {
      this.logger.warn({ err, instancesPath: this.instancesPath }, 'cannot watch instances_path; new guests are found on first use');
    }
  }

  // ---- events --------------------------------------------------------------------------------

  onLifecycleEvent(listener: LifecycleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onMonitorEvent(socketPath: string, event: QmpEvent): void {
    if (path.dirname(socketPath) !== this.instancesPath || !socketPath.endsWith('.monitor')) return;
    const name = path.basename(socketPath, '.monitor');
    if (!this.nameTemplate.matches(name)) return;
    const mapped = transitionFor(event, this.tracked.get(name));
    if (!mapped) return;
    this.tracked.set(name, mapped.powerState);
    this.emit({ name, uuid: this.uuids.get(name) ?? null, ...mapped, timestamp: eventTimestampMs(event, Date.now()) });
  }

  /**
   * A state we saw by looking (not from an event). Emits the transition when it differs from what we
   * last reported; on first sight of a guest (`firstSightSilent`) only remembers it.
   */
  private observe(name: string, state: PowerState, source: string, emitOnFirstSight: boolean): void {
    const previous = this.tracked.get(name);
    this.tracked.set(name, state);
    if (previous === undefined && !emitOnFirstSight) return;
    const transition = transitionBetween(previous, state);
    if (transition) this.emit({ name, uuid: this.uuids.get(name) ?? null, transition, powerState: state, timestamp: Date.now(), source });
  }

  private emit(event: LifecycleEvent): void {
    this.logger.debug({ instance: event.name, instance_uuid: event.uuid, transition: event.transition, source: event.source }, 'lifecycle event');
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.error({ err, instance: event.name, instance_uuid: event.uuid }, 'lifecycle listener failed');
      }
    }
  }

  // ---- per-guest entry -----------------------------------------------------------------------

  /** Validate the name (before any path is built) and run `fn` for that guest. */
  private async withGuest<T>(ref: InstanceRef, fn: (g: QemuGuest) => Promise<T>): Promise<T> {
    const g = new QemuGuest(this.ctx, this.nameTemplate.validate(ref.name), ref.uuid ?? null);
    try {
      return await fn(g);
    } catch (err) {
      // QEMU vanished between two commands: for the caller that is "not running" (or never existed).
      if (err instanceof GuestOffline) throw await g.notRunning();
      throw err;
    }
  }

  /** Power actions on one guest run one at a time; other guests are not held up. */
  private async serialised<T>(ref: InstanceRef, fn: (g: QemuGuest) => Promise<T>): Promise<T> {
    return this.withGuest(ref, async (g) => {
      const before = this.locks.get(g.name) ?? Promise.resolve();
      const run = before.catch(() => undefined).then(() => fn(g));
      const tail = run.catch(() => undefined);
      this.locks.set(g.name, tail);
      try {
        return await run;
      } finally {
        if (this.locks.get(g.name) === tail) this.locks.delete(g.name);
      }
    });
  }

  // ---- inspection ----------------------------------------------------------------------------

  async getInfo(instance: InstanceRef): Promise<InstanceInfo> {
    return this.withGuest(instance, async (g) => {
      const status = await g.status();
      if (status === 'offline') {
        if (!(await g.exists())) throw new InstanceNotFound(g.errorId);
        return { state: PowerState.SHUTDOWN };
      }
      return { state: powerStateFromQemuStatus(status) };
    });
  }

  async getConsoleOutput(instance: InstanceRef): Promise<Buffer> {
    return this.withGuest(instance, async (g) => {
      const conventional = await readTail(g.consoleLogPath);
      if (conventional) return conventional;
      // Not at the conventional path: look for the chardev's logfile= in QEMU's (or the recorded) cmdline.
      const pid = (await g.socketExists()) ? await g.pid() : null;
      const record = await g.record();
      const argv = (pid !== null ? await readCmdline(pid) : null) ?? record?.argv ?? [];
      for (const file of consoleLogFilesFromCmdline(argv)) {
        const data = await readTail(path.resolve(record?.cwd ?? '/', file));
        if (data) return data;
      }
      if (!(await g.exists())) throw new InstanceNotFound(g.errorId);
      throw new ConsoleNotAvailable();
    });
  }

  async getInstanceDiagnostics(instance: InstanceRef): Promise<Diagnostics> {
    return toDiagnostics(await this.stats(instance, 'get_instance_diagnostics'));
  }

  async getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics> {
    return toLegacyDiagnostics(await this.stats(instance, 'get_diagnostics'));
  }

  private async stats(instance: InstanceRef, method: string): Promise<GuestStats> {
    return this.withGuest(instance, async (g) => {
      const status = await g.status();
      const off = status === 'offline' || powerStateFromQemuStatus(status) === PowerState.SHUTDOWN;
      if (status === 'offline' && !(await g.exists())) throw new InstanceNotFound(g.errorId);
      // Nova only diagnoses a guest that is up; a powered-off one is in the wrong state for it.
      if (off) throw new InstanceInvalidState(g.uuid ?? this.uuids.get(g.name) ?? g.name, 'power_state', 'shutdown', method);
      return collectGuestStats(
        (cmd, args) => g.exec(cmd, args),
        (line) => g.hmp(line),
        await g.pid(),
      );
    });
  }

  async getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    return this.withGuest(instance, async (g) => {
      const reply = await this.consoleQuery<QueryVncReply>(g, 'query-vnc', 'vnc');
      const endpoint = vncEndpoint(reply, this.proxyClientAddress);
      if (!endpoint) throw new ConsoleTypeUnavailable('vnc');
      return endpoint;
    });
  }

  async getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    return this.withGuest(instance, async (g) => {
      const chardevs = await this.consoleQuery<ChardevInfo[]>(g, 'query-chardev', 'serial');
      const endpoint = serialEndpoint(chardevs, this.proxyClientAddress);
      if (!endpoint) throw new ConsoleTypeUnavailable('serial');
      return endpoint;
    });
  }

  /** A console query: an offline guest, or a QEMU without the feature, has no such console. */
  private async consoleQuery<T>(g: QemuGuest, command: string, consoleType: string): Promise<T> {
    try {
      return await g.exec<T>(command);
    } catch (err) {
      if (err instanceof GuestOffline) {
        if (!(await g.exists())) throw new InstanceNotFound(g.errorId);
        throw new ConsoleTypeUnavailable(consoleType);
      }
      if (err instanceof MonitorCommandFailed) throw new ConsoleTypeUnavailable(consoleType);
      throw err;
    }
  }

  // ---- power ---------------------------------------------------------------------------------

  async powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void> {
    await this.serialised(instance, async (g) => {
      await g.powerOff(options);
      // The SHUTDOWN event is usually, not always, delivered before QEMU exits.
      if (this.tracked.get(g.name) !== PowerState.SHUTDOWN && (await g.powerState()) === PowerState.SHUTDOWN) {
        this.observe(g.name, PowerState.SHUTDOWN, 'SHUTDOWN/power-off', true);
      }
    });
  }

  async powerOn(instance: InstanceRef): Promise<void> {
    await this.serialised(instance, async (g) => {
      await g.start();
      this.observeRunning(g);
    });
  }

  async pause(instance: InstanceRef): Promise<void> {
    await this.serialised(instance, (g) => g.pause());
  }

  async unpause(instance: InstanceRef): Promise<void> {
    await this.serialised(instance, (g) => g.unpause());
  }

  async reboot(instance: InstanceRef, type: RebootType): Promise<void> {
    await this.serialised(instance, async (g) => {
      await g.reboot(type);
      this.observeRunning(g);
    });
  }

  /** After a start or relaunch: a fresh QEMU sends no RESUME, so report the start ourselves if needed. */
  private observeRunning(g: QemuGuest): void {
    if (this.tracked.get(g.name) !== PowerState.RUNNING) this.observe(g.name, PowerState.RUNNING, 'relaunch', true);
  }

  async monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown> {
    return this.withGuest(instance, async (g) => {
      if (!(await g.socketExists())) throw await g.notRunning();
      return command.kind === 'qmp' ? g.exec(command.execute, command.arguments) : g.hmp(command.commandLine);
    });
  }

  async screenshot(instance: InstanceRef): Promise<Screenshot> {
    return this.withGuest(instance, (g) => guestScreenshot(g, this.ctx.stateDir));
  }

  async triggerCrashDump(instance: InstanceRef): Promise<void> {
    await this.withGuest(instance, (g) => guestTriggerCrashDump(g));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.watcher?.close();
    this.watcher = null;
    this.listeners.clear();
    const names = new Set([...this.tracked.keys(), ...this.uuids.keys(), ...this.ctx.pids.keys()]);
    await Promise.all(
      [...names].map((name) =>
        this.monitors.drop(path.join(this.instancesPath, `${name}.monitor`)).catch((err: unknown) => this.logger.debug({ err, instance: name }, 'drop failed')),
      ),
    );
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
