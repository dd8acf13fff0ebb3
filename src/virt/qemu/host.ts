// The qemu driver's host side: discovery of guests in instances_path, one GuestModel per live monitor
// connection (made on first need, fed by the connection's events, replaced on reconnect), and the lifecycle
// events and model-change notifications that follow from the models. Per-guest operations are in guest.ts.

import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { QmpEvent } from '../../qmp/connection.js';
import type { QmpMonitorRegistry } from '../../qmp/monitor-registry.js';
import type { DiscoveredInstance, GuestChangeListener, GuestRunEventListener, LifecycleEvent, LifecycleListener } from '../driver.js';
import type { InstanceNameTemplate } from '../instance-name.js';
import { PowerState } from '../power-state.js';
import { OperationsInProgress } from '../run-event.js';
import { guestRunEvent, transitionBetween } from './events.js';
import { QemuGuest, type QemuContext } from './guest.js';
import { GuestModel, type ModelChange } from './model.js';
import { guestView } from './view.js';

const DISCOVERY_CONCURRENCY = 8;
/** A new guest's monitor: first try after this, then doubling up to the cap, for at most the budget. */
const FOLLOW_FIRST_DELAY_MS = 250;
const FOLLOW_MAX_DELAY_MS = 5_000;
const FOLLOW_BUDGET_MS = 10 * 60_000;

interface ModelEntry {
  readonly model: GuestModel;
  readonly ready: Promise<GuestModel>;
  loaded: boolean;
}

export class QemuHost {
  private readonly lifecycleListeners = new Set<LifecycleListener>();
  private readonly changeListeners = new Set<GuestChangeListener>();
  private readonly runEventListeners = new Set<GuestRunEventListener>();
  /** The power state we last reported (or first saw) per guest, across connections. */
  private readonly reported = new Map<string, PowerState>();
  /** The guest's own uuid per name, kept after its QEMU is gone. */
  readonly uuids = new Map<string, string | null>();
  private readonly recordedPids = new Map<string, number>();
  private readonly models = new Map<string, ModelEntry>();
  private readonly opening = new Map<string, Promise<GuestModel>>();
  /** Power operations of ours in flight per guest (kept a moment after they end: QEMU's event may trail the reply). */
  private readonly operations = new OperationsInProgress();
  private unsubscribe: (() => void) | null = null;
  private watcher: FSWatcher | null = null;
  /** Names whose new socket is being connected to (see follow). */
  private readonly following = new Set<string>();
  private closed = false;

  constructor(
    private readonly ctx: QemuContext,
    private readonly nameTemplate: InstanceNameTemplate,
    private readonly monitors: QmpMonitorRegistry,
    private readonly logger: Logger,
    /**
     * Called synchronously when a guest reports GUEST_PANICKED with action `pause`, before anyone hears of
     * the panic or of the CRASHED state it leads to: what it queues on the guest runs before their reactions.
     */
    private readonly onPanicPaused: (name: string, uuid: string | null) => void = () => undefined,
  ) {}

  start(): void {
    this.unsubscribe ??= this.monitors.subscribe((socketPath, event) => this.onMonitorEvent(socketPath, event));
    this.watchInstancesPath();
  }

  // ---- models --------------------------------------------------------------------------------

  /** See QemuContext.model. */
  model(g: QemuGuest): Promise<GuestModel> {
    const entry = this.models.get(g.name);
    const live = this.monitors.connectionOf(g.socketPath);
    if (entry && live && entry.model.connection === live) return entry.ready;
    let opening = this.opening.get(g.name);
    if (!opening) {
      opening = this.open(g).finally(() => this.opening.delete(g.name));
      this.opening.set(g.name, opening);
    }
    return opening;
  }

  /** The model of a guest whose monitor is connected (or that dropped since), without connecting. */
  modelOf(name: string): GuestModel | null {
    const entry = this.models.get(name);
    return entry?.loaded ? entry.model : null;
  }

  /** Every loaded model whose monitor is still connected. */
  liveModels(): GuestModel[] {
    return [...this.models.values()].filter((e) => e.loaded && !e.model.offline).map((e) => e.model);
  }

  private async open(g: QemuGuest): Promise<GuestModel> {
    const conn = await g.connect();
    const existing = this.models.get(g.name);
    if (existing && existing.model.connection === conn) return existing.ready;
    const model = new GuestModel(g.name, conn, g.exec, this.logger);
    model.on('change', (change) => this.onModelChange(entry, change));
    const entry: ModelEntry = { model, ready: this.load(g, model), loaded: false };
    this.models.set(g.name, entry);
    entry.ready.then(
      () => {
        entry.loaded = true;
        this.notify(model, { aspect: 'connection' });
      },
      () => {
        if (this.models.get(g.name) === entry) this.models.delete(g.name);
      },
    );
    return entry.ready;
  }

  private async load(g: QemuGuest, model: GuestModel): Promise<GuestModel> {
    await model.load();
    this.uuids.set(g.name, model.uuid);
    this.observe(g.name, model.powerState, 'reconnect', false);
    // Record how this QEMU was started, once per process, so it can be started again after it exits.
    const pid = await g.pid();
    if (pid !== null && this.recordedPids.get(g.name) !== pid) {
      const recorded = await g.recordCommandLine(model.uuid, false).catch((err: unknown) => {
        this.logger.warn({ err, instance: g.name }, 'recording the guest\'s command line failed');
        return null;
      });
      if (recorded) this.recordedPids.set(g.name, pid);
    }
    return model;
  }

  private onModelChange(entry: ModelEntry, change: ModelChange): void {
    const { model } = entry;
    if (!entry.loaded && change.aspect !== 'connection') return;
    if (change.aspect === 'state' || change.aspect === 'connection') {
      const r = model.reason;
      const source = model.offline ? 'SHUTDOWN/disconnect' : r.reason ? `${r.event}/${r.reason}` : r.event;
      this.observe(model.name, model.powerState, source, true, model.offline ? Date.now() : r.at);
    }
    if (entry.loaded) this.notify(model, change);
  }

  private notify(model: GuestModel, change: ModelChange): void {
    if (this.changeListeners.size === 0) return;
    const view = guestView(model);
    for (const listener of this.changeListeners) {
      try {
        listener(view, change.aspect);
      } catch (err) {
        this.logger.error({ err, instance: model.name }, 'guest change listener failed');
      }
    }
  }

  /** The guest's QEMU is gone (we quit it, or found it dead before a relaunch). */
  observedOffline(name: string): void {
    const entry = this.models.get(name);
    if (entry) entry.model.markOffline('stopped');
    this.observe(name, PowerState.SHUTDOWN, 'SHUTDOWN/disconnect', false);
  }

  // ---- events --------------------------------------------------------------------------------

  onLifecycleEvent(listener: LifecycleListener): () => void {
    this.lifecycleListeners.add(listener);
    return () => this.lifecycleListeners.delete(listener);
  }

  onGuestChange(listener: GuestChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Runs a power operation of ours on `name`; run events meanwhile (and for a second after) are marked as its doing. */
  duringOperation<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.operations.during(name, fn);
  }

  onGuestRunEvent(listener: GuestRunEventListener): () => void {
    this.runEventListeners.add(listener);
    return () => this.runEventListeners.delete(listener);
  }

  private onMonitorEvent(socketPath: string, event: QmpEvent): void {
    if (path.dirname(socketPath) !== this.ctx.instancesPath || !socketPath.endsWith('.monitor')) return;
    const name = path.basename(socketPath, '.monitor');
    if (!this.nameTemplate.matches(name)) return;
    const entry = this.models.get(name);
    const parsed = guestRunEvent(name, entry?.model.uuid ?? this.uuids.get(name) ?? null, event);
    const run = parsed && this.operations.has(name) ? { ...parsed, duringOperation: true } : parsed;
    if (run?.event === 'GUEST_PANICKED' && run.action === 'pause') {
      try {
        this.onPanicPaused(name, run.uuid);
      } catch (err) {
        this.logger.error({ err, instance: name }, 'panic handler failed');
      }
    }
    for (const listener of this.runEventListeners) {
      if (!run) break;
      try {
        listener(run);
      } catch (err) {
        this.logger.error({ err, instance: name }, 'guest run event listener failed');
      }
    }
    if (event.event === 'SHUTDOWN' && event.data?.['reason'] === 'disconnect') {
      // The registry's word that the connection dropped without our asking: QEMU is gone.
      if (entry && this.monitors.connectionOf(socketPath) !== entry.model.connection) entry.model.markOffline('disconnect');
      if (!entry) this.observe(name, PowerState.SHUTDOWN, 'SHUTDOWN/disconnect', true);
      return;
    }
    if (entry && entry.model.connection === this.monitors.connectionOf(socketPath)) {
      entry.model.handle(event);
      return;
    }
    // Events on a connection nobody modelled yet (a passthrough made it): model it now; its first
    // query-status includes what this event did.
    if (!this.closed) this.model(new QemuGuest(this.ctx, name)).catch((err: unknown) => this.logger.debug({ err, instance: name }, 'modelling a guest failed'));
  }

  /**
   * A power state seen (by event or by looking). Emits the transition when it differs from what we last
   * reported; on first sight of a guest only remembers it unless `emitOnFirstSight`.
   */
  observe(name: string, state: PowerState, source: string, emitOnFirstSight: boolean, timestamp = Date.now()): void {
    const previous = this.reported.get(name);
    this.reported.set(name, state);
    if (previous === undefined && !emitOnFirstSight) return;
    const transition = transitionBetween(previous, state);
    if (transition) this.emit({ name, uuid: this.uuids.get(name) ?? null, transition, powerState: state, timestamp, source });
  }

  lastReported(name: string): PowerState | undefined {
    return this.reported.get(name);
  }

  private emit(event: LifecycleEvent): void {
    this.logger.debug({ instance: event.name, instance_uuid: event.uuid, transition: event.transition, source: event.source }, 'lifecycle event');
    for (const listener of this.lifecycleListeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.error({ err, instance: event.name, instance_uuid: event.uuid }, 'lifecycle listener failed');
      }
    }
  }

  // ---- discovery -----------------------------------------------------------------------------

  async listInstances(): Promise<DiscoveredInstance[]> {
    const names = new Set<string>();
    for (const entry of await readdirOrEmpty(this.ctx.instancesPath)) {
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
    const known = () => this.uuids.get(name) ?? record?.uuid ?? null;
    if (!hasSocket) {
      // Without a socket only guests we powered off ourselves are listed (we can start them again).
      return record?.poweredOff ? { name, uuid: known(), powerState: PowerState.SHUTDOWN } : null;
    }
    try {
      const model = await g.model();
      if (!model) return { name, uuid: known(), powerState: PowerState.SHUTDOWN };
      // A guest keeps its own uuid, never one we invent.
      return { name, uuid: model.uuid, powerState: model.powerState };
    } catch (err) {
      // A socket nobody answers on is a guest we cannot reach: report it off rather than hide it.
      this.logger.warn({ err, instance: name }, 'guest monitor did not answer during discovery');
      return { name, uuid: known(), powerState: PowerState.SHUTDOWN };
    }
  }

  /** New sockets appearing after initHost are connected to at once, so their events flow too. */
  private watchInstancesPath(): void {
    if (this.watcher || this.closed) return;
    try {
      this.watcher = watch(this.ctx.instancesPath, (_type, filename) => {
        const file = filename?.toString();
        if (!file?.endsWith('.monitor')) return;
        const name = file.slice(0, -'.monitor'.length);
        if (this.nameTemplate.matches(name)) this.follow(name);
      });
      this.watcher.on('error', (err) => this.logger.warn({ err }, 'watching instances_path failed'));
      this.watcher.unref();
    } catch (err) {
      this.logger.warn({ err, instancesPath: this.ctx.instancesPath }, 'cannot watch instances_path; new guests are found on first use');
    }
  }

  /**
   * Connects to a guest whose socket just appeared, so its events are heard from its first instruction on.
   * A QEMU still starting (it greets only once its main loop runs, seconds later on a busy host) or a
   * monitor another client holds does not answer in time: it is tried again, less and less often, while
   * its socket is there. Missing the window would lose the events of a guest that powers off or panics
   * soon after boot: discovery later finds it off, but not why.
   */
  private follow(name: string): void {
    if (this.following.has(name)) return;
    this.following.add(name);
    void this.followUntilConnected(name).finally(() => this.following.delete(name));
  }

  private async followUntilConnected(name: string): Promise<void> {
    const g = new QemuGuest(this.ctx, name);
    const started = Date.now();
    // QEMU creates the socket before it listens on it: the first try waits a moment too.
    let delayMs = FOLLOW_FIRST_DELAY_MS;
    await sleep(delayMs);
    for (let tries = 1; ; tries++) {
      if (this.closed || this.monitors.has(g.socketPath) || !(await g.socketExists())) return;
      const tried = Date.now();
      // A refusal or hang-up comes back as no model (no QEMU there, yet), a silent monitor as an error.
      const outcome = await g.model().then(
        (model) => (model ? null : 'no QEMU answered on the socket'),
        (err: unknown) => err,
      );
      if (outcome === null) {
        if (tries > 1) this.logger.info({ instance: name, tries }, 'connected to a new guest\'s monitor after it did not answer at first');
        return;
      }
      if (Date.now() - started >= FOLLOW_BUDGET_MS) {
        this.logger.warn({ err: outcome, instance: name, tries }, 'a new guest\'s monitor never answered; it is connected on first use');
        return;
      }
      this.logger.debug({ err: outcome, instance: name, tries }, 'connecting to a new guest failed; trying again');
      // Tries start at most `delayMs` apart: one that waited out the greeting timeout is followed at once,
      // so a QEMU that finishes starting is never left unwatched; a refusal does not spin.
      delayMs = Math.min(delayMs * 2, FOLLOW_MAX_DELAY_MS);
      await sleep(delayMs - (Date.now() - tried));
    }
  }

  /** Stops events and the watcher; returns the names of every guest we know, for the caller to drop. */
  close(): string[] {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.watcher?.close();
    this.watcher = null;
    this.lifecycleListeners.clear();
    this.changeListeners.clear();
    return [...new Set([...this.reported.keys(), ...this.uuids.keys(), ...this.models.keys(), ...this.ctx.pids.keys()])];
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** A pause that does not keep the process alive (a follow-up must not hold a stopping service). */
function sleep(ms: number): Promise<void> {
  return ms > 0 ? delay(ms, undefined, { ref: false }) : Promise.resolve();
}
