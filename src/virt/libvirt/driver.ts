// LibvirtDriver: the ComputeDriver for compute_driver = libvirt. libvirtd starts QEMU and holds its
// monitor, so guests are reached through libvirt's RPC socket (host.ts, guest.ts): domain state, bulk
// stats, domain XML and lifecycle events from libvirt, QMP/HMP and QEMU's own events through its passthrough.

import { readTail } from '../console-log.js';
import { inject, injectable } from 'inversify';
import type { Config } from '../../config/options.js';
import { ConsoleNotAvailable, ConsoleTypeUnavailable, InstanceInvalidState, InstanceNotRunning, InternalError } from '../../exception.js';
import { RootLogger, type Logger } from '../../logging.js';
import {
  MAX_CONSOLE_BYTES, type ComputeDriver, type ConsoleEndpoint, type Diagnostics, type DiscoveredInstance, type GuestRunEventListener,
  type GuestSamples, type InstanceInfo, type InstanceRef, type LegacyDiagnostics, type LifecycleListener, type MonitorCommand,
  type PowerOffOptions, type RebootType, type Screenshot,
} from '../driver.js';
import { MAX_SCREENDUMP_BYTES } from '../screenshot.js';
import { LibvirtStreamTooLarge } from './connection.js';
import { screenshotFromLibvirt } from './screenshot.js';
import { InstanceNameTemplate } from '../instance-name.js';
import { powerStateName } from '../power-state.js';
import { diagnosticsFromStats, legacyDiagnosticsFromStats } from './diagnostics.js';
import { LibvirtStatsCollector, type LibvirtGuestStats } from './guest-stats.js';
import { DomainCache } from './domain-cache.js';
import { LibvirtGuest, powerStateFromLibvirt } from './guest.js';
import { LibvirtHost } from './host.js';
import type { EventMessage } from './event-messages.js';
import { lifecycleEventFromLibvirt } from './events.js';
import { DomainState, STATS_NOWAIT, StatsType, uuidToString } from './protocol.js';
import { LibvirtRunEvents, RUN_EVENT_PATTERN } from './run-events.js';
import { sampleFromStats } from './samples.js';

/** The loaded Config; the same registry key as the composition root's ConfigId (virt/ must not import main/). */
export const LibvirtDriverConfig = Symbol.for('novamon.Config');

/** What one scrape asks libvirtd for every domain: the groups prometheus-libvirt-exporter's figures come from. */
const SAMPLE_STATS = StatsType.STATE | StatsType.CPU_TOTAL | StatsType.BALLOON | StatsType.VCPU | StatsType.INTERFACE | StatsType.BLOCK;

/** A domain with a QEMU process (running, paused, ...), which has figures to report. */
function isLive(state: number): boolean {
  return state !== DomainState.SHUTOFF && state !== DomainState.CRASHED && state !== DomainState.NOSTATE;
}

@injectable()
export class LibvirtDriver implements ComputeDriver {
  readonly type = 'libvirt';
  private readonly host: LibvirtHost;
  /** Handles, states and XML kept by libvirt's lifecycle events, so most calls ask libvirtd nothing. */
  private readonly domains: DomainCache;
  private readonly names: InstanceNameTemplate;
  private readonly listeners = new Set<LifecycleListener>();
  /** Diagnostics figures: shared by concurrent callers, balloon and start time kept between calls. */
  private readonly stats: LibvirtStatsCollector;
  /** Shutdowns, resets and panics with QEMU's reasons, and each domain's last state-change reason. */
  private readonly runEvents: LibvirtRunEvents;
  /** Guests in the last scrape: how many a failed bulk-stats call left out. */
  private lastSampled = 0;
  private readonly log: Logger;

  constructor(
    @inject(LibvirtDriverConfig) private readonly config: Config,
    @inject(RootLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'libvirt-driver' });
    this.names = new InstanceNameTemplate(config.DEFAULT.instance_name_template);
    this.host = new LibvirtHost({
      uri: config.libvirt.connection_uri,
      connectTimeoutMs: config.monitor.connect_timeout * 1000,
      callTimeoutMs: config.monitor.command_timeout * 1000,
      logger: this.log,
      monitorEvents: RUN_EVENT_PATTERN,
    });
    this.host.hostName = config.DEFAULT.host;
    this.domains = new DomainCache(this.host);
    this.stats = new LibvirtStatsCollector(this.log);
    this.runEvents = new LibvirtRunEvents(() => this.host.runEventSource(), (name) => this.names.matches(name), this.log);
    this.host.onEvent((m) => this.onHostEvent(m));
  }

  private onHostEvent(m: EventMessage): void {
    this.runEvents.handle(m);
    if (m.kind === 'device') {
      // A hot-plugged or removed disk or NIC: the cached XML (devices, paths, tap names) is stale.
      this.domains.forget(m.domain.name, 'config');
      this.stats.forget(m.domain.name);
      return;
    }
    if (m.kind !== 'lifecycle') return;
    this.domains.apply(m);
    this.stats.forget(m.domain.name);
    const event = lifecycleEventFromLibvirt(m.domain.name, uuidToString(m.domain.uuid), m.event, m.detail, Date.now());
    if (!event) return;
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.log.error({ err, instance: event.uuid, name: event.name }, 'lifecycle listener failed');
      }
    }
  }

  async initHost(host: string): Promise<void> {
    this.host.hostName = host;
    await this.host.startEvents();
  }

  async listInstances(): Promise<DiscoveredInstance[]> {
    const records = await this.host.call('', (c) => c.getAllDomainStats([], StatsType.STATE));
    return records
      .filter((r) => this.names.matches(r.domain.name))
      .map((r) => ({
        name: r.domain.name,
        uuid: uuidToString(r.domain.uuid),
        powerState: powerStateFromLibvirt(Number(r.params.get('state.state') ?? DomainState.NOSTATE)),
      }));
  }

  async getInfo(instance: InstanceRef): Promise<InstanceInfo> {
    const guest = await this.guest(instance);
    const state = await guest.powerState();
    return { state, internalId: guest.handle.id >= 0 ? String(guest.handle.id) : undefined };
  }

  async getConsoleOutput(instance: InstanceRef): Promise<Buffer> {
    const guest = await this.guest(instance);
    const logs = (await guest.config()).consoleLogs;
    const file = logs[0];
    if (!file) throw new ConsoleNotAvailable();
    // An absent log (the guest never wrote) is an empty console.
    return readTail(file, MAX_CONSOLE_BYTES) ?? Buffer.alloc(0);
  }

  async getInstanceDiagnostics(instance: InstanceRef): Promise<Diagnostics> {
    return diagnosticsFromStats(await this.diagnosable(instance, 'get_instance_diagnostics', false));
  }

  async getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics> {
    return legacyDiagnosticsFromStats(await this.diagnosable(instance, 'get_diagnostics', true));
  }

  async getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    const guest = await this.guest(instance);
    if (!(await guest.isActive())) throw new ConsoleTypeUnavailable('vnc');
    const vnc = (await guest.config()).vnc;
    if (!vnc || vnc.port === null || vnc.port <= 0) throw new ConsoleTypeUnavailable('vnc');
    // As Nova: the console proxy reaches the guest's VNC server at server_proxyclient_address.
    return { host: this.config.vnc.server_proxyclient_address, port: vnc.port, internalAccessPath: null };
  }

  async getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint> {
    const guest = await this.guest(instance);
    if (!(await guest.isActive())) throw new ConsoleTypeUnavailable('serial');
    const serial = (await guest.config()).tcpSerials[0];
    if (!serial) throw new ConsoleTypeUnavailable('serial');
    return { host: serial.host, port: serial.port, internalAccessPath: null };
  }

  async powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void> {
    await this.operate(instance, async (guest) => {
      if (!(await guest.isActive())) return;
      if (options.timeout > 0 && (await this.cleanShutdown(guest, options.timeout, options.retryInterval))) return;
      await this.destroyIfActive(guest);
    });
  }

  async powerOn(instance: InstanceRef): Promise<void> {
    await this.operate(instance, async (guest) => {
      const state = await guest.state();
      if (state === DomainState.PAUSED) await guest.resume();
      else if (state === DomainState.SHUTOFF || state === DomainState.CRASHED || state === DomainState.NOSTATE) await guest.start();
    });
  }

  async pause(instance: InstanceRef): Promise<void> {
    const guest = await this.guest(instance);
    const state = await guest.state();
    if (state === DomainState.PAUSED) return;
    if (state !== DomainState.RUNNING && state !== DomainState.BLOCKED) throw new InstanceNotRunning(guest.instanceId);
    await guest.suspend();
  }

  async unpause(instance: InstanceRef): Promise<void> {
    const guest = await this.guest(instance);
    const state = await guest.state();
    if (state === DomainState.RUNNING || state === DomainState.BLOCKED) return;
    if (state !== DomainState.PAUSED) throw new InstanceNotRunning(guest.instanceId);
    await guest.resume();
  }

  async reboot(instance: InstanceRef, type: RebootType): Promise<void> {
    await this.operate(instance, (guest) => this.rebootGuest(guest, type));
  }

  private async rebootGuest(guest: LibvirtGuest, type: RebootType): Promise<void> {
    if (!(await guest.isActive())) {
      // Nova's hard reboot recreates the domain, so rebooting a powered-off guest starts it.
      await guest.start();
      return;
    }
    if (type === 'SOFT' && (await guest.state()) === DomainState.RUNNING) {
      // As Nova's _soft_reboot: ask the guest to power off, start it again once it has; if it
      // ignores the request within the shutdown timeout, fall back to a hard reboot.
      if (await this.cleanShutdown(guest, this.config.DEFAULT.shutdown_timeout, 10)) {
        await guest.start();
        return;
      }
      if (!(await guest.isActive())) {
        await guest.start();
        return;
      }
    }
    await guest.reset();
    if ((await guest.state()) === DomainState.PAUSED) await guest.resume();
  }

  async monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown> {
    const guest = await this.guest(instance);
    const readOnly = command.kind === 'qmp' ? command.execute.startsWith('query-') : /^\s*info\b/.test(command.commandLine);
    try {
      return command.kind === 'hmp' ? await guest.hmp(command.commandLine) : await guest.qmp(command.execute, command.arguments);
    } finally {
      // A command behind libvirt's back may change what libvirt's XML and state said: ask again next time.
      if (!readOnly) this.domains.forget(guest.name);
    }
  }

  /** virDomainScreenshot over the remote protocol (a stream): PNG as libvirt 9 has QEMU write it, or PPM re-encoded. */
  async screenshot(instance: InstanceRef): Promise<Screenshot> {
    const guest = await this.guest(instance);
    let shot: { mime: string | null; data: Buffer };
    try {
      shot = await guest.screenshot(MAX_SCREENDUMP_BYTES);
    } catch (err) {
      if (err instanceof InternalError && err.cause instanceof LibvirtStreamTooLarge) {
        throw new InternalError(`screenshot of ${guest.instanceId} refused: ${err.cause.message}`);
      }
      throw err;
    }
    return screenshotFromLibvirt(guest.instanceId, shot.mime, shot.data);
  }

  /** Nova's libvirt driver: virDomainInjectNMI; an inactive domain is InstanceNotRunning. */
  async triggerCrashDump(instance: InstanceRef): Promise<void> {
    const guest = await this.guest(instance);
    if (!(await guest.isActive())) throw new InstanceNotRunning(guest.instanceId);
    await guest.injectNmi();
  }

  onLifecycleEvent(listener: LifecycleListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** QEMU's SHUTDOWN/RESET/GUEST_PANICKED/GUEST_CRASHLOADED relayed by libvirtd (or derived from its events). */
  onGuestRunEvent(listener: GuestRunEventListener): () => void {
    return this.runEvents.onRunEvent(listener);
  }

  /**
   * Every domain of ours from one virConnectGetAllDomainStats (libvirtd asks each QEMU itself); NOWAIT so a
   * guest busy with a job gives what it can at once. A failed or late call leaves the last scrape's guests out.
   */
  async guestSamples(opts: { concurrency: number; timeoutMs: number }): Promise<GuestSamples> {
    const t0 = performance.now();
    try {
      const records = await this.host.call('', (c) => c.getAllDomainStats([], SAMPLE_STATS, STATS_NOWAIT, opts.timeoutMs));
      const seconds = (performance.now() - t0) / 1000;
      const connectedAt = this.host.connectedAt ?? Date.now();
      const samples = records
        .filter((r) => this.names.matches(r.domain.name))
        .map((r) => sampleFromStats(r.domain, r.params, this.runEvents.reason(r.domain.name), seconds, connectedAt));
      this.lastSampled = samples.length;
      return { samples, failed: 0 };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'guest metrics collection through libvirt failed');
      return { samples: [], failed: Math.max(1, this.lastSampled) };
    }
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.host.close();
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** A power operation of ours: run events it causes are marked as its doing (the caller's action records them). */
  private async operate(instance: InstanceRef, fn: (guest: LibvirtGuest) => Promise<void>): Promise<void> {
    const guest = await this.guest(instance);
    await this.runEvents.during(guest.name, () => fn(guest));
  }

  private async guest(instance: InstanceRef): Promise<LibvirtGuest> {
    const name = this.names.validate(instance.name);
    const handle = await this.domains.handle(name, () => this.host.lookup(name, instance.uuid));
    return new LibvirtGuest(this.host, handle, instance.uuid ?? name, this.domains);
  }

  /** The guest's figures, or InstanceInvalidState when it is not running (checked from what events told us first). */
  private async diagnosable(instance: InstanceRef, method: string, freshBalloon: boolean): Promise<LibvirtGuestStats> {
    const guest = await this.guest(instance);
    const notRunning = (state: number) =>
      new InstanceInvalidState(guest.instanceId, 'power_state', powerStateName(powerStateFromLibvirt(state)), method);
    const before = await guest.state();
    if (!isLive(before)) throw notRunning(before);
    let stats: LibvirtGuestStats;
    try {
      stats = await this.stats.collect(guest, freshBalloon);
    } catch (err) {
      // The domain may have stopped after the check: then that is the answer, not the failed call.
      this.domains.forget(guest.name, 'state');
      const now = await guest.state().catch(() => before);
      throw isLive(now) ? err : notRunning(now);
    }
    if (!isLive(stats.state)) throw notRunning(stats.state);
    return stats;
  }

  /** ACPI power-off, re-sent every retryInterval, until the domain is shut off or timeout seconds pass. */
  private async cleanShutdown(guest: LibvirtGuest, timeoutSeconds: number, retryIntervalSeconds: number): Promise<boolean> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let nextRequest = 0;
    // As Nova's _clean_shutdown: a crashed domain cannot answer ACPI; it is destroyed at once.
    if ((await guest.state()) === DomainState.CRASHED) return false;
    while (Date.now() < deadline) {
      if (!(await guest.isActive())) return true;
      if (Date.now() >= nextRequest) {
        await guest.shutdownAcpi().catch((err: unknown) => {
          // The domain may have stopped between the state read and the request.
          if (!(err instanceof InstanceNotRunning)) throw err;
        });
        nextRequest = Date.now() + Math.max(1, retryIntervalSeconds) * 1000;
      }
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(0, deadline - Date.now()))));
    }
    return !(await guest.isActive());
  }

  private async destroyIfActive(guest: LibvirtGuest): Promise<void> {
    try {
      await guest.destroy();
    } catch (err) {
      // Already gone (it shut itself down meanwhile): that is what we wanted.
      if (err instanceof InstanceNotRunning && !(await guest.isActive())) return;
      throw err;
    }
  }
}
