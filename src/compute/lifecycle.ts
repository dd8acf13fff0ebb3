// Keeping the instance records true to the hypervisor: discovery at start-up (Nova's init_host),
// lifecycle events from the driver applied as they arrive (Nova's libvirt driver holds a STOPPED event
// 15 s; we do not), and the periodic power-state sync (Nova's _sync_power_states) that repairs whatever
// events missed. A guest that stopped by itself is stopped the way Nova does it: a `stop` action
// started by the host, then stop_instance.

import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'inversify';
import { adminContext, type RequestContext } from '../context.js';
import { InstanceNotFound, InternalError } from '../exception.js';
import type { Logger } from '../logging.js';
import { ComputeDriver, type DiscoveredInstance, type LifecycleEvent } from '../virt/driver.js';
import { PowerState } from '../virt/power-state.js';
import { InstanceResolver, type ResolvedInstance } from './instance-resolver.js';
import { InstanceRecorder } from './recorder.js';
import { TaskState, VmState } from './states.js';
import {
  ComputeLogger,
  ComputeSettings,
  ComputeStores,
  type ComputeSettingsShape,
  type ComputeStoresShape,
  type InstanceRecord,
  type InstanceStatesUpdate,
  isUnexpectedTaskState,
} from './tokens.js';
import { KeyedChain } from '../keyed-chain.js';

/** How the host stops an instance it found off (the manager's stop_instance, run in-process). */
export type StopHandler = (ctx: RequestContext, instance: ResolvedInstance) => Promise<void>;

/** A stop QEMU could not explain (the monitor went away: killed) or a host error: recorded as an instance fault. */
const ABNORMAL_STOP = /disconnect|host-error/i;

/** vm_states Nova leaves alone in a power-state sync. */
const SYNC_SKIP_VM_STATES = new Set<string>([VmState.BUILDING, VmState.RESCUED, VmState.RESIZED, VmState.SUSPENDED, VmState.ERROR]);
const OFF_STATES = new Set<number>([PowerState.NOSTATE, PowerState.SHUTDOWN, PowerState.CRASHED]);

/**
 * Nova's _sync_instance_power_state decision for one instance: the power_state to store and, when
 * Nova would stop the instance, vm_state stopped. A pending task skips the instance, as in Nova.
 * A guest found running while vm_state is stopped is left running (logged by the caller).
 */
export function syncDecision(row: Pick<InstanceRecord, 'vmState' | 'taskState' | 'powerState'>, actual: PowerState): InstanceStatesUpdate | null {
  if (row.taskState) return null;
  const update: InstanceStatesUpdate = {};
  if (row.powerState !== actual) update.powerState = actual;
  const vm = row.vmState ?? VmState.ACTIVE;
  if (!SYNC_SKIP_VM_STATES.has(vm)) {
    if (vm === VmState.ACTIVE && (OFF_STATES.has(actual) || actual === PowerState.SUSPENDED) && actual !== PowerState.NOSTATE) {
      update.vmState = VmState.STOPPED;
    } else if (vm === VmState.PAUSED && (actual === PowerState.SHUTDOWN || actual === PowerState.CRASHED)) {
      update.vmState = VmState.STOPPED;
    }
  }
  return Object.keys(update).length > 0 ? update : null;
}

@injectable()
export class PowerStateSync {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  /** Per-instance chain so events for one guest apply in order. */
  private readonly chains = new KeyedChain();
  private closed = false;
  private stopHandler: StopHandler | null = null;
  eventsHandled = 0;

  constructor(
    @inject(ComputeDriver) private readonly driver: ComputeDriver,
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(InstanceResolver) private readonly resolver: InstanceResolver,
    @inject(InstanceRecorder) private readonly recorder: InstanceRecorder,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'power-sync' });
  }

  /** The compute manager registers its stop_instance here (Nova casts stop_instance to itself). */
  onUnexpectedShutdown(handler: StopHandler): void {
    this.stopHandler = handler;
  }

  /** Connects the driver, reconciles the rows of every guest found, and starts events and the periodic sync. */
  async start(): Promise<void> {
    this.unsubscribe = this.driver.onLifecycleEvent((event) => this.enqueue(event.name, () => this.applyEvent(event)));
    await this.driver.initHost(this.settings.host);
    await this.discover();
    const interval = this.settings.syncPowerStateInterval;
    if (interval > 0) {
      this.timer = setInterval(() => {
        this.syncAll().catch((err: unknown) => this.log.error({ err }, 'power-state sync failed'));
      }, interval * 1000);
      this.timer.unref();
    }
  }

  /** Discovery: every guest the driver sees gets a row (new guests owned by the configured defaults). */
  async discover(): Promise<number> {
    const guests = await this.driver.listInstances();
    for (const guest of guests) await this.reconcile(guest);
    const seen = new Set(guests.map((g) => g.name));
    for (const row of await this.stores.instances.listByHost(this.settings.host)) {
      if (!seen.has(row.name)) await this.syncOne(row);
    }
    this.log.info({ guests: guests.length }, 'discovery done');
    return guests.length;
  }

  /** One pass of Nova's _sync_power_states over this host's rows. */
  async syncAll(): Promise<void> {
    const rows = await this.stores.instances.listByHost(this.settings.host);
    for (const row of rows) await this.enqueue(row.name, () => this.syncOne(row));
  }

  /** Stops listening, then lets the updates already queued reach the database. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.chains.settled();
    this.closed = true;
  }

  private enqueue(name: string, work: () => Promise<void>): Promise<void> {
    return this.chains
      .run(name, () => (this.closed ? Promise.resolve() : work()))
      .catch((err: unknown) => this.log.error({ instance_name: name, err }, 'power-state update failed'));
  }

  private async reconcile(guest: DiscoveredInstance): Promise<void> {
    const template = this.resolver.nameTemplate;
    let row = await this.stores.instances.getByName(guest.name);
    if (!row && guest.uuid) row = await this.stores.instances.getByUuid(guest.uuid);
    if (!row) {
      const created = await this.stores.instances.upsert({
        uuid: guest.uuid ?? randomUUID(),
        id: template.parseId(guest.name),
        name: guest.name,
        host: this.settings.host,
        node: this.settings.host,
        powerState: guest.powerState,
        vmState: guest.powerState === PowerState.SHUTDOWN ? VmState.STOPPED : guest.powerState === PowerState.PAUSED ? VmState.PAUSED : VmState.ACTIVE,
        taskState: null,
        displayName: guest.name,
        projectId: this.settings.defaultInstanceProject || null,
        userId: this.settings.defaultInstanceUser || null,
      });
      if (!created) {
        this.log.info({ instance_name: guest.name, guest_uuid: guest.uuid }, 'guest has no instance in the instance database; left alone');
        return;
      }
      this.log.info({ instance_uuid: created.uuid, instance_name: guest.name }, 'discovered a new guest');
      this.resolver.remember({ uuid: created.uuid, name: created.name, id: created.id });
      // A guest found crashed is stopped as Nova's sync stops an ACTIVE instance found CRASHED.
      await this.applyState(created, guest.powerState);
      return;
    }
    await this.applyState(row, guest.powerState);
    this.resolver.remember({ uuid: row.uuid, name: row.name, id: row.id });
  }

  private async applyEvent(event: LifecycleEvent): Promise<void> {
    this.eventsHandled++;
    // A guest that appeared after start-up has no row until it is discovered: discovery writes the
    // state the driver holds now, which already includes this event.
    const row = await this.stores.instances.getByName(event.name);
    if (!row) {
      this.log.debug({ instance_name: event.name, source: event.source }, 'event for a guest with no row; discovering');
      await this.discover();
      return;
    }
    this.log.info({ instance_uuid: row.uuid, transition: event.transition, source: event.source }, 'lifecycle event');
    await this.applyState(row, event.powerState, event.source);
  }

  private async syncOne(row: InstanceRecord): Promise<void> {
    let actual: PowerState;
    try {
      actual = (await this.driver.getInfo({ name: row.name, uuid: row.uuid })).state;
    } catch (err) {
      if (!(err instanceof InstanceNotFound)) throw err;
      actual = PowerState.NOSTATE;
    }
    await this.applyState(row, actual);
  }

  /** Nova's _sync_instance_power_state for one instance and the hypervisor's state `actual`. */
  private async applyState(row: InstanceRecord, actual: PowerState, reason = 'power-state sync'): Promise<void> {
    if (row.host !== null && row.host !== this.settings.host) {
      this.log.info({ instance_uuid: row.uuid, host: row.host }, 'instance is on another host now; not syncing its power state');
      return;
    }
    const update = syncDecision(row, actual);
    if (row.vmState === VmState.STOPPED && !OFF_STATES.has(actual) && !row.taskState) {
      this.log.warn({ instance_uuid: row.uuid, power_state: actual }, 'instance is running while vm_state is stopped; left running');
    }
    if (!update) return;
    const ctx = adminContext(`req-${randomUUID()}`);
    if (update.powerState !== undefined) await this.stores.instances.updateStates(row.uuid, { powerState: update.powerState }, { ctx });
    this.log.info({ instance_uuid: row.uuid, ...update, reason }, 'power state synced');
    if (update.vmState === VmState.STOPPED) await this.stopUnexpected(ctx, row, actual, reason);
  }

  /**
   * Nova's _stop_unexpected_shutdown_instance and compute API force_stop: task_state powering-off
   * (only from None), a `stop` action under a fresh request id, then stop_instance on this host.
   * A reason QEMU gives for an abnormal stop (panic, killed by a signal) is kept as an instance fault.
   */
  private async stopUnexpected(ctx: RequestContext, row: InstanceRecord, actual: PowerState, reason: string): Promise<void> {
    const instance: ResolvedInstance = { uuid: row.uuid, name: row.name, id: row.id };
    this.log.warn({ instance_uuid: row.uuid, reason, power_state: actual }, 'Instance shutdown by itself. Calling the stop API.');
    // A driver that reports run events has the panic recorded already (GuestRunEventLog).
    if (ABNORMAL_STOP.test(reason) || (actual === PowerState.CRASHED && !this.driver.onGuestRunEvent)) {
      await this.recorder.recordFault(ctx, instance, new GuestStoppedByItself(row.uuid, reason));
    }
    try {
      await this.stores.instances.updateStates(row.uuid, { taskState: TaskState.POWERING_OFF, progress: 0 }, { ctx, expectedTaskState: [null] });
    } catch (err) {
      if (!isUnexpectedTaskState(err)) throw err;
      this.log.info({ instance_uuid: row.uuid, err: String(err) }, 'another task took the instance first; not stopping it');
      return;
    }
    await this.stores.actions.actionStart(ctx, { instanceUuid: row.uuid, action: 'stop' });
    if (this.stopHandler) {
      await this.stopHandler(ctx, instance);
    } else {
      await this.stores.instances.updateStates(row.uuid, { powerState: actual, vmState: VmState.STOPPED, taskState: null }, { ctx, expectedTaskState: [TaskState.POWERING_OFF, null] });
    }
  }
}

/** The fault left when QEMU says why a guest stopped without being asked (a panic, a kill from outside). */
export class GuestStoppedByItself extends InternalError {
  constructor(uuid: string, reason: string) {
    super(`Instance ${uuid} stopped by itself: QEMU reported ${reason}`);
  }
}
