// The direct QMP ComputeDriver: guests are QEMU processes whose monitor sockets live in instances_path as
// `<name>.monitor`. Inspection answers from each guest's model (model.ts, kept by QMP events: no command for
// the running check, power state or consoles); diagnostics add one query-blockstats; power actions run one
// at a time per guest. Host-wide concerns (discovery, models, events) are in host.ts, one guest's in guest.ts.

import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { inject, injectable } from 'inversify';
import type { Logger } from 'pino';
import { ConsoleNotAvailable, ConsoleTypeUnavailable, InstanceInvalidState, InstanceNotFound } from '../../exception.js';
import * as qmp from '../../qmp/commands.js';
import type { QmpMonitorRegistry } from '../../qmp/monitor-registry.js';
import type {
  ComputeDriver,
  ConsoleEndpoint,
  Diagnostics,
  DiscoveredInstance,
  GuestChangeListener,
  GuestRunEventListener,
  GuestSamples,
  GuestView,
  InstanceInfo,
  InstanceRef,
  LegacyDiagnostics,
  LifecycleListener,
  MonitorCommand,
  MonitorStats,
  PowerOffOptions,
  RebootType,
  Screenshot,
} from '../driver.js';
import type { InstanceNameTemplate } from '../instance-name.js';
import { PowerState } from '../power-state.js';
import { consoleLogFilesFromCmdline, readTail, serialEndpoint, vncEndpoint } from './console.js';
import { collectGuestStats, toDiagnostics, toLegacyDiagnostics, type GuestStats } from './diagnostics.js';
import { GuestOffline } from './errors.js';
import { QemuGuest, type QemuContext } from './guest.js';
import { QemuHost } from './host.js';
import type { GuestModel } from './model.js';
import { readCmdline } from './proc.js';
import { guestScreenshot, guestTriggerCrashDump } from './forensics.js';
import { DEFAULT_PANIC_DUMP, dumpGuestAfterPanic, type PanicDumpSettings } from './panic-dump.js';
import { guestView } from './view.js';
import { sampleGuests } from './samples.js';
import { KeyedChain } from '../../keyed-chain.js';

export const QemuDriverOptions = Symbol.for('novamon.QemuDriverOptions');
export const DEFAULT_EMULATORS: readonly string[] = ['/usr/bin/qemu-system-x86_64'];
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
  /** QEMU binaries guests must run and power_on may start; default /usr/bin/qemu-system-x86_64. */
  emulators?: readonly string[];
  /** Directories besides instancesPath power_on may take disk images from ([qemu] relaunch_image_paths); default none. */
  relaunchImagePaths?: readonly string[];
  /** How long a soft reboot waits for the guest to shut down before rebooting hard (Nova: 120 s). */
  softRebootWaitSeconds?: number;
  /** Address consoles are reached on when QEMU listens on a wildcard (Nova's server_proxyclient_address). */
  proxyClientAddress?: string;
  /** A memory dump of each guest that panics (with action pause) before it is stopped; off by default. */
  panicDump?: PanicDumpSettings;
}

/** How long after it started a diagnostics collection may still be joined by a new request. */
const JOIN_WINDOW_MS = 200;

/** Passthrough commands that cannot add or remove devices: no need to re-read the model after them. */
const NO_DEVICE_CHANGE = new Set(['stop', 'cont', 'system_powerdown', 'system_reset', 'system_wakeup', 'quit', 'qom-get', 'qom-list']);

@injectable()
export class QemuDriver implements ComputeDriver {
  readonly type = 'qemu';
  private readonly monitors: QmpMonitorRegistry;
  private readonly nameTemplate: InstanceNameTemplate;
  private readonly logger: Logger;
  private readonly proxyClientAddress: string;
  private readonly ctx: QemuContext;
  private readonly host: QemuHost;
  private hostName: string;
  private readonly powerActions = new KeyedChain();
  private readonly panicDump: PanicDumpSettings;
  /** Diagnostics collections in flight per model: concurrent requests for one guest share one. */
  private readonly collecting = new WeakMap<GuestModel, { run: Promise<GuestStats>; startedAt: number }>();

  constructor(@inject(QemuDriverOptions) opts: QemuDriverOptions) {
    this.monitors = opts.monitors;
    this.nameTemplate = opts.nameTemplate;
    this.logger = opts.logger.child({ component: 'qemu-driver' });
    this.hostName = opts.host ?? os.hostname();
    this.proxyClientAddress = opts.proxyClientAddress ?? '127.0.0.1';
    this.panicDump = opts.panicDump ?? DEFAULT_PANIC_DUMP;
    this.ctx = {
      instancesPath: path.resolve(opts.instancesPath),
      stateDir: path.resolve(opts.stateDir),
      emulators: opts.emulators ?? DEFAULT_EMULATORS,
      relaunchImagePaths: opts.relaunchImagePaths ?? [],
      monitors: opts.monitors,
      commandTimeoutMs: opts.commandTimeoutMs,
      softRebootWaitMs: (opts.softRebootWaitSeconds ?? 120) * 1000,
      logger: this.logger,
      host: () => this.hostName,
      model: (g) => this.host.model(g),
      pids: new Map(),
      pidVerifiedFor: new Map(),
      knownUuid: (name) => this.host.uuids.get(name) ?? null,
      observedOffline: (name) => this.host.observedOffline(name),
    };
    this.host = new QemuHost(this.ctx, opts.nameTemplate, opts.monitors, this.logger, (name, uuid) => this.queuePanicDump(name, uuid));
  }

  // ---- host ----------------------------------------------------------------------------------

  async initHost(host: string): Promise<void> {
    this.hostName = host;
    await mkdir(this.ctx.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(this.ctx.instancesPath, { recursive: true });
    this.host.start();
    // Discovery connects to (and models) every live guest; the connections stay open so events flow.
    const found = await this.listInstances();
    this.logger.info({ host, guests: found.length }, 'qemu driver ready');
  }

  listInstances(): Promise<DiscoveredInstance[]> {
    return this.host.listInstances();
  }

  onLifecycleEvent(listener: LifecycleListener): () => void {
    return this.host.onLifecycleEvent(listener);
  }

  onGuestRunEvent(listener: GuestRunEventListener): () => void {
    return this.host.onGuestRunEvent(listener);
  }

  onGuestChange(listener: GuestChangeListener): () => void {
    return this.host.onGuestChange(listener);
  }

  guestView(instance: InstanceRef): GuestView | null {
    const model = this.host.modelOf(this.nameTemplate.validate(instance.name));
    return model ? guestView(model) : null;
  }

  monitorStats(): MonitorStats {
    const { connections, commands, errors } = this.monitors.stats();
    return { connections, commands, errors };
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
    return this.withGuest(ref, (g) => this.powerActions.run(g.name, () => this.host.duringOperation(g.name, () => fn(g))));
  }

  /**
   * Called synchronously from the panic's event dispatch: the dump takes the guest's place in the serial
   * chain before the CRASHED state is reported, so the stop Nova's power-state sync sends waits behind it.
   */
  private queuePanicDump(name: string, uuid: string | null): void {
    if (!this.panicDump.enabled) return;
    void this.serialised({ name, uuid: uuid ?? undefined }, (g) => dumpGuestAfterPanic(g, this.panicDump, this.ctx.stateDir, this.logger)).catch((err: unknown) =>
      this.logger.warn({ err, instance: name }, 'memory dump after a panic failed'),
    );
  }

  // ---- inspection: from the model ------------------------------------------------------------

  async getInfo(instance: InstanceRef): Promise<InstanceInfo> {
    return this.withGuest(instance, async (g) => {
      const model = await g.model();
      if (model) return { state: model.powerState };
      if (!(await g.exists())) throw new InstanceNotFound(g.errorId);
      return { state: PowerState.SHUTDOWN };
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
      const model = await g.model();
      if (!model && !(await g.exists())) throw new InstanceNotFound(g.errorId);
      // Nova only diagnoses a guest that is up; a powered-off one is in the wrong state for it.
      if (!model || model.powerState === PowerState.SHUTDOWN) {
        throw new InstanceInvalidState(g.uuid ?? this.host.uuids.get(g.name) ?? g.name, 'power_state', 'shutdown', method);
      }
      return this.collect(model, g);
    });
  }

  private collect(model: GuestModel, g: QemuGuest): Promise<GuestStats> {
    // Join a collection only while its figures are as fresh as our own would be; one stuck on a frozen
    // monitor is not joined late, so each caller still waits at most its own command timeout.
    const inFlight = this.collecting.get(model);
    if (inFlight && performance.now() - inFlight.startedAt < JOIN_WINDOW_MS) return inFlight.run;
    const entry = { run: (async () => collectGuestStats(model, g.exec, await g.pid()))(), startedAt: performance.now() };
    this.collecting.set(model, entry);
    void entry.run.finally(() => {
      if (this.collecting.get(model) === entry) this.collecting.delete(model);
    }).catch(() => undefined);
    return entry.run;
  }

  guestSamples(opts: { concurrency: number; timeoutMs: number }): Promise<GuestSamples> {
    const collect = (model: GuestModel) => this.collect(model, new QemuGuest(this.ctx, model.name, model.uuid));
    return sampleGuests(this.host.liveModels(), collect, opts, (model, err) =>
      this.logger.warn({ instance: model.name, err: (err as Error).message }, 'guest metrics collection failed'),
    );
  }

  async getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    return this.withGuest(instance, async (g) => {
      const model = await this.consoleModel(g, 'vnc');
      const endpoint = model.vnc ? vncEndpoint({ enabled: true, host: model.vnc.host, service: model.vnc.service }, this.proxyClientAddress) : null;
      if (!endpoint) throw new ConsoleTypeUnavailable('vnc');
      return endpoint;
    });
  }

  async getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    return this.withGuest(instance, async (g) => {
      const model = await this.consoleModel(g, 'serial');
      const endpoint = serialEndpoint(model.chardevs, this.proxyClientAddress);
      if (!endpoint) throw new ConsoleTypeUnavailable('serial');
      return endpoint;
    });
  }

  /** A console needs a live QEMU: an offline guest has none (or does not exist). */
  private async consoleModel(g: QemuGuest, consoleType: string): Promise<GuestModel> {
    const model = await g.model();
    if (model) return model;
    if (!(await g.exists())) throw new InstanceNotFound(g.errorId);
    throw new ConsoleTypeUnavailable(consoleType);
  }

  // ---- power ---------------------------------------------------------------------------------

  async powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void> {
    await this.serialised(instance, async (g) => {
      await g.powerOff(options);
      // The SHUTDOWN event is usually, not always, delivered before QEMU exits.
      if (this.host.lastReported(g.name) !== PowerState.SHUTDOWN && (await g.powerState()) === PowerState.SHUTDOWN) {
        this.host.observe(g.name, PowerState.SHUTDOWN, 'SHUTDOWN/power-off', true);
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
    if (this.host.lastReported(g.name) !== PowerState.RUNNING) this.host.observe(g.name, PowerState.RUNNING, 'relaunch', true);
  }

  async monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown> {
    return this.withGuest(instance, async (g) => {
      const model = await g.model();
      if (!model) throw await g.notRunning();
      const result =
        command.kind === 'qmp' ? await qmp.passthrough(g.exec, command.execute, command.arguments) : await qmp.humanMonitorCommand(g.exec, command.commandLine);
      // Hot-plug sends no event QEMU 7.2 would tell us about: re-read the model after anything that may change devices.
      const readOnly = command.kind === 'qmp' ? command.execute.startsWith('query-') || NO_DEVICE_CHANGE.has(command.execute) : /^\s*info\b/.test(command.commandLine);
      if (!readOnly) model.refreshAll().catch((err: unknown) => this.logger.warn({ err, instance: g.name }, 'refreshing the guest model after a monitor command failed'));
      return result;
    });
  }

  async screenshot(instance: InstanceRef): Promise<Screenshot> {
    return this.withGuest(instance, (g) => guestScreenshot(g, this.ctx.stateDir));
  }

  async triggerCrashDump(instance: InstanceRef): Promise<void> {
    await this.withGuest(instance, (g) => guestTriggerCrashDump(g));
  }

  async close(): Promise<void> {
    const names = this.host.close();
    await Promise.all(
      names.map((name) =>
        this.monitors.drop(path.join(this.ctx.instancesPath, `${name}.monitor`)).catch((err: unknown) => this.logger.debug({ err, instance: name }, 'drop failed')),
      ),
    );
  }
}
