// The per-guest model: one object per connected monitor that knows the guest without asking. It is loaded
// once when the connection is made (run state, uuid, consoles, devices, vCPU threads, memory) and kept
// current by QMP events, so the running check, power state, consoles and device lists cost no command.
// Only numbers that change by themselves (block counters, balloon guest stats) are asked for, by the caller.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import * as qmp from '../../qmp/commands.js';
import { MonitorCommandFailed } from '../../exception.js';
import type { GuestAspect, GuestBlockDevice as BlockDevice, GuestNic as NetDevice, GuestVcpu as Vcpu, StateReason } from '../driver.js';
import { PowerState, powerStateFromQemuStatus } from '../power-state.js';
import { eventTimestampMs, runStateAfter, RUN_STATE_EVENTS, type MonitorEvent } from './events.js';
import { toNetDevices } from './network.js';

export interface VncServer {
  readonly host: string;
  /** The TCP port, as QEMU gives it (a string). */
  readonly service: string;
  readonly family: string | null;
  readonly auth: string | null;
}

export interface MemoryFacts {
  /** Boot memory plus hot-plugged memory, bytes. */
  readonly maximumBytes: number | null;
  /** What the balloon gives the guest now (BALLOON_CHANGE keeps it current), bytes; null without a balloon. */
  readonly balloonActualBytes: number | null;
  /** QOM path of the balloon device, when the guest has one. */
  readonly balloonPath: string | null;
  /** How often the guest's balloon driver refreshes its stats (0: never asked to). */
  readonly statsPeriodSeconds: number;
}

export type ModelAspect = GuestAspect;

/** A change notification: which aspect changed, and for the run state what it was before. */
export interface ModelChange {
  readonly aspect: ModelAspect;
  readonly previousStatus?: string;
  readonly previousPowerState?: PowerState;
}

type Events = { change: [change: ModelChange] };

/** Commands the model sends when it loads or refreshes, run without the driver's per-command hooks. */
export type ModelExecutor = qmp.QmpExecutor;

/** Optional queries: a QEMU without the command or device gives null; timeouts and disconnects still throw. */
async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof MonitorCommandFailed) return null;
    throw err;
  }
}

const UUID_ZERO = '00000000-0000-0000-0000-000000000000';

export class GuestModel extends EventEmitter<Events> {
  #status = 'unknown';
  #stopAs: string | null = null;
  #reason: StateReason;
  #uuid: string | null = null;
  #kvm: boolean | null = null;
  #vnc: VncServer | null = null;
  #chardevs: readonly qmp.QmpChardevInfo[] = [];
  #block: readonly BlockDevice[] = [];
  #nics: readonly NetDevice[] = [];
  #vcpus: readonly Vcpu[] = [];
  #memory: MemoryFacts = { maximumBytes: null, balloonActualBytes: null, balloonPath: null, statsPeriodSeconds: 0 };
  /** Bumped by every event that touches an aspect: a query answered across one is stale and asked again. */
  readonly #epochs = new Map<ModelAspect, number>();
  readonly #refreshing = new Map<ModelAspect, Promise<void>>();
  readonly #dirty = new Set<ModelAspect>();
  #offline = false;
  readonly connectedAt = Date.now();

  constructor(
    readonly name: string,
    /** The QMP connection this model belongs to; a reconnect makes a new model. */
    readonly connection: object,
    private readonly exec: ModelExecutor,
    private readonly log: Logger,
  ) {
    super();
    this.#reason = { event: 'connect', reason: null, guest: null, at: this.connectedAt };
  }

  // ---- what the model knows ------------------------------------------------------------------

  /** QEMU's run state (running, paused, shutdown, prelaunch, ...), or `offline` once the monitor dropped. */
  get status(): string {
    return this.#offline ? 'offline' : this.#status;
  }
  get powerState(): PowerState {
    return this.#offline ? PowerState.SHUTDOWN : powerStateFromQemuStatus(this.#status);
  }
  get offline(): boolean {
    return this.#offline;
  }
  get reason(): StateReason {
    return this.#reason;
  }
  /** The guest's own uuid (`-uuid`), null when it has none. */
  get uuid(): string | null {
    return this.#uuid;
  }
  /** Whether KVM accelerates the guest (false under TCG), null when QEMU would not say. */
  get kvm(): boolean | null {
    return this.#kvm;
  }
  get vnc(): VncServer | null {
    return this.#vnc;
  }
  get chardevs(): readonly qmp.QmpChardevInfo[] {
    return this.#chardevs;
  }
  get blockDevices(): readonly BlockDevice[] {
    return this.#block;
  }
  get nics(): readonly NetDevice[] {
    return this.#nics;
  }
  get vcpus(): readonly Vcpu[] {
    return this.#vcpus;
  }
  get memory(): MemoryFacts {
    return this.#memory;
  }

  // ---- loading -------------------------------------------------------------------------------

  /** The queries a fresh connection needs, pipelined. Rejects (mapped errors) when the status query fails. */
  async load(): Promise<void> {
    const uuid = qmp.queryUuid(this.exec);
    const kvm = optional(qmp.queryKvm(this.exec));
    await Promise.all([
      this.refreshStatus('query-status'),
      this.refresh('vnc'),
      this.refresh('chardevs'),
      this.refresh('block'),
      this.refresh('nics'),
      this.refresh('vcpus'),
      this.refresh('memory'),
      uuid.then(({ UUID }) => (this.#uuid = UUID && UUID !== UUID_ZERO ? UUID.toLowerCase() : null)),
      kvm.then((k) => (this.#kvm = k ? k.enabled : null)),
    ]);
  }

  /**
   * Asks QEMU for the run state and takes the answer unless an event changed the state meanwhile (then the
   * event is newer, or as new, and the answer is discarded). `why` names the look in the state's reason.
   */
  async refreshStatus(why: string): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const epoch = this.#epoch('state');
      const { status } = await qmp.queryStatus(this.exec);
      if (epoch === this.#epoch('state')) {
        this.#setStatus(status, { event: why, reason: null, guest: null, at: Date.now() });
        return status;
      }
      if (attempt >= 3) return this.status;
    }
  }

  /** Re-reads one aspect; concurrent requests for it share a run, and one requested mid-run runs again after. */
  refresh(aspect: Exclude<ModelAspect, 'state' | 'connection'>): Promise<void> {
    const running = this.#refreshing.get(aspect);
    if (running) {
      this.#dirty.add(aspect);
      return running;
    }
    const run = (async () => {
      do {
        this.#dirty.delete(aspect);
        const epoch = this.#epoch(aspect);
        await this.#load(aspect);
        if (epoch !== this.#epoch(aspect)) this.#dirty.add(aspect);
      } while (this.#dirty.has(aspect) && !this.#offline);
    })().finally(() => this.#refreshing.delete(aspect));
    this.#refreshing.set(aspect, run);
    return run;
  }

  /** Refresh in the background (after an event): failures are logged, the last known value stays. */
  #refreshSoon(aspect: Exclude<ModelAspect, 'state' | 'connection'>): void {
    this.#bump(aspect);
    this.refresh(aspect).catch((err: unknown) => this.log.warn({ err, instance: this.name, aspect }, 'refreshing the guest model failed'));
  }

  async #load(aspect: Exclude<ModelAspect, 'state' | 'connection'>): Promise<void> {
    switch (aspect) {
      case 'vnc': {
        const v = await optional(qmp.queryVnc(this.exec));
        this.#set('vnc', () => (this.#vnc = v?.enabled && v.service ? { host: v.host ?? '', service: v.service, family: v.family ?? null, auth: v.auth ?? null } : null));
        return;
      }
      case 'chardevs': {
        const c = await qmp.queryChardev(this.exec);
        this.#set('chardevs', () => (this.#chardevs = c));
        return;
      }
      case 'block': {
        const b = await optional(qmp.queryBlock(this.exec));
        this.#set('block', () => (this.#block = (b ?? []).map(toBlockDevice)));
        return;
      }
      case 'nics': {
        const [rx, network] = await Promise.all([optional(qmp.queryRxFilter(this.exec)), optional(qmp.humanMonitorCommand(this.exec, 'info network'))]);
        this.#set('nics', () => (this.#nics = toNetDevices(rx ?? [], network)));
        return;
      }
      case 'vcpus': {
        const cpus = await qmp.queryCpusFast(this.exec);
        const vcpus = cpus.map((c) => ({ index: c['cpu-index'], threadId: c['thread-id'], qomPath: c['qom-path'] })).sort((a, b) => a.index - b.index);
        this.#set('vcpus', () => (this.#vcpus = vcpus));
        return;
      }
      case 'memory':
        await this.#loadMemory();
        return;
    }
  }

  async #loadMemory(): Promise<void> {
    const [summary, balloon] = await Promise.all([optional(qmp.queryMemorySizeSummary(this.exec)), optional(qmp.queryBalloon(this.exec))]);
    let balloonPath: string | null = null;
    let period = 0;
    if (balloon) {
      const peripherals = await optional(qmp.qomList(this.exec, '/machine/peripheral'));
      const dev = peripherals?.find((p) => /^child<virtio-balloon/.test(p.type));
      balloonPath = dev ? `/machine/peripheral/${dev.name}` : null;
      if (balloonPath) period = (await optional(qmp.qomGetInt(this.exec, balloonPath, 'guest-stats-polling-interval'))) ?? 0;
    }
    const maximumBytes = summary ? summary['base-memory'] + (summary['plugged-memory'] ?? 0) : (balloon?.actual ?? null);
    this.#set('memory', () => (this.#memory = { maximumBytes, balloonActualBytes: balloon?.actual ?? null, balloonPath, statsPeriodSeconds: period }));
  }

  /**
   * The balloon driver's latest guest stats, or null when the guest cannot have any (no balloon device, or
   * polling never enabled). The guest refreshes them once per stats period, so a reply is reused until the
   * next refresh is due; concurrent callers share one query.
   */
  balloonGuestStats(): Promise<qmp.QmpBalloonGuestStats | null> {
    const { balloonPath, statsPeriodSeconds } = this.#memory;
    if (!balloonPath || statsPeriodSeconds <= 0) return Promise.resolve(null);
    const cached = this.#guestStats;
    if (cached && Date.now() < cached.validUntil) return cached.value;
    const value = optional(qmp.qomGetBalloonGuestStats(this.exec, balloonPath));
    const entry = { value, validUntil: Number.POSITIVE_INFINITY };
    this.#guestStats = entry;
    value.then(
      (v) => {
        // Valid until the guest's next report is due (QEMU stamps last-update in host seconds).
        const next = v && v['last-update'] > 0 ? (v['last-update'] + statsPeriodSeconds) * 1000 : 0;
        entry.validUntil = Math.min(Math.max(next, Date.now()), Date.now() + statsPeriodSeconds * 1000);
      },
      () => {
        entry.validUntil = 0;
      },
    );
    return value;
  }
  #guestStats: { value: Promise<qmp.QmpBalloonGuestStats | null>; validUntil: number } | null = null;

  // ---- events --------------------------------------------------------------------------------

  /** Applies one QMP event from this model's connection, in the order QEMU sent it. */
  handle(event: MonitorEvent): void {
    if (this.#offline) return;
    if (RUN_STATE_EVENTS.has(event.event)) this.#applyRunState(event);
    const name = event.event;
    if (name.startsWith('VNC_')) this.#applyVnc(event);
    else if (name === 'BALLOON_CHANGE') this.#applyBalloon(event);
    else if (name === 'NIC_RX_FILTER_CHANGED') this.#refreshSoon('nics');
    else if (name === 'DEVICE_DELETED') {
      for (const aspect of ['block', 'nics', 'vcpus', 'chardevs', 'memory'] as const) this.#refreshSoon(aspect);
    } else if (name.startsWith('BLOCK_') && name !== 'BLOCK_IO_ERROR') this.#refreshSoon('block');
    else if (name === 'DEVICE_TRAY_MOVED') this.#refreshSoon('block');
  }

  /** The monitor connection dropped: the guest is off (or unreachable) until a new connection says otherwise. */
  markOffline(reason: string): void {
    if (this.#offline) return;
    const previousStatus = this.#status;
    const previousPowerState = this.powerState;
    this.#offline = true;
    this.#reason = { event: 'disconnect', reason, guest: null, at: Date.now() };
    this.#emit({ aspect: 'connection', previousStatus, previousPowerState });
  }

  /**
   * Re-read everything: after a passthrough command that may have changed devices (hot-plug has no event),
   * or when asked to. The run state is asked too.
   */
  async refreshAll(): Promise<void> {
    await Promise.all([this.refreshStatus('query-status'), ...(['vnc', 'chardevs', 'block', 'nics', 'vcpus', 'memory'] as const).map((a) => this.refresh(a))]);
  }

  #applyRunState(event: MonitorEvent): void {
    this.#bump('state');
    const step = runStateAfter(this.#status, this.#stopAs, event);
    this.#stopAs = step.stopAs;
    if (step.status === this.#status) return;
    const reason = typeof event.data?.['reason'] === 'string' ? event.data['reason'] : typeof event.data?.['action'] === 'string' ? event.data['action'] : null;
    const guest = typeof event.data?.['guest'] === 'boolean' ? event.data['guest'] : null;
    this.#setStatus(step.status, { event: event.event, reason, guest, at: eventTimestampMs(event, Date.now()) });
  }

  #applyVnc(event: MonitorEvent): void {
    // Every VNC_* event names the server it happened on: its listening address, so no query is needed.
    const server = event.data?.['server'];
    if (!server || typeof server !== 'object') return;
    const s = server as Record<string, unknown>;
    if (typeof s['host'] !== 'string' || typeof s['service'] !== 'string') return;
    const next: VncServer = { host: s['host'], service: s['service'], family: typeof s['family'] === 'string' ? s['family'] : null, auth: typeof s['auth'] === 'string' ? s['auth'] : (this.#vnc?.auth ?? null) };
    const cur = this.#vnc;
    if (cur && cur.host === next.host && cur.service === next.service) return;
    this.#bump('vnc');
    this.#set('vnc', () => (this.#vnc = next));
  }

  #applyBalloon(event: MonitorEvent): void {
    const actual = event.data?.['actual'];
    if (typeof actual !== 'number' || !Number.isFinite(actual) || actual < 0) return;
    this.#bump('memory');
    this.#set('memory', () => (this.#memory = { ...this.#memory, balloonActualBytes: actual }));
  }

  // ---- internals -----------------------------------------------------------------------------

  #epoch(aspect: ModelAspect): number {
    return this.#epochs.get(aspect) ?? 0;
  }
  #bump(aspect: ModelAspect): void {
    this.#epochs.set(aspect, this.#epoch(aspect) + 1);
  }

  #setStatus(status: string, reason: StateReason): void {
    const previousStatus = this.#status;
    const previousPowerState = this.powerState;
    if (status === previousStatus) return;
    this.#status = status;
    this.#reason = reason;
    this.#emit({ aspect: 'state', previousStatus, previousPowerState });
  }

  /** Applies a new value of one aspect; listeners hear of it only when it differs from the old one. */
  #set(aspect: ModelAspect, apply: () => void): void {
    const before = JSON.stringify(this.#aspectValue(aspect));
    apply();
    if (JSON.stringify(this.#aspectValue(aspect)) !== before) this.#emit({ aspect });
  }

  #aspectValue(aspect: ModelAspect): unknown {
    switch (aspect) {
      case 'vnc':
        return this.#vnc;
      case 'chardevs':
        return this.#chardevs;
      case 'block':
        return this.#block;
      case 'nics':
        return this.#nics;
      case 'vcpus':
        return this.#vcpus;
      case 'memory':
        return this.#memory;
      default:
        return null;
    }
  }

  #emit(change: ModelChange): void {
    try {
      this.emit('change', change);
    } catch (err) {
      this.log.error({ err, instance: this.name, aspect: change.aspect }, 'guest model listener threw');
    }
  }
}

function toBlockDevice(b: qmp.QmpBlockInfo): BlockDevice {
  return {
    device: b.device,
    qdev: b.qdev ?? null,
    nodeName: b.inserted?.['node-name'] ?? null,
    file: b.inserted?.file ?? null,
    readOnly: b.inserted ? b.inserted.ro : null,
    removable: b.removable,
    trayOpen: b.tray_open ?? null,
    ioStatus: b['io-status'] ?? null,
  };
}
