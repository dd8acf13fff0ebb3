// Why a guest went down: every shutdown, reset, panic and crash-load the hypervisor reports is kept as an
// instance action (guest_shutdown, guest_reset, guest_panicked, guest_crashloaded) whose one event names
// QEMU's event and carries its reason and whether the guest asked for it; panics and crash-loads also
// leave an instance fault. The power state a panic leads to (CRASHED) is the power-state sync's job.

import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'inversify';
import { adminContext } from '../context.js';
import type { Logger } from '../logging.js';
import { ComputeDriver, type GuestRunEvent } from '../virt/driver.js';
import { PowerStateSync } from './lifecycle.js';
import { ComputeLogger, ComputeSettings, ComputeStores, type ComputeSettingsShape, type ComputeStoresShape } from './tokens.js';
import { KeyedChain } from '../keyed-chain.js';

const ACTIONS: Record<GuestRunEvent['event'], string> = {
  SHUTDOWN: 'guest_shutdown',
  RESET: 'guest_reset',
  GUEST_PANICKED: 'guest_panicked',
  GUEST_CRASHLOADED: 'guest_crashloaded',
};

/** The event's details as one line: `reason=guest-shutdown guest=true` (panics: `action=pause`, info). */
export function describeRunEvent(e: GuestRunEvent): string {
  const parts: string[] = [];
  if (e.reason !== null) parts.push(`reason=${e.reason}`);
  if (e.guest !== null) parts.push(`guest=${String(e.guest)}`);
  if (e.action !== null) parts.push(`action=${e.action}`);
  if (e.info !== null) parts.push(`info=${JSON.stringify(e.info).slice(0, 300)}`);
  return parts.join(' ') || 'no details';
}

@injectable()
export class GuestRunEventLog {
  private readonly log: Logger;
  private unsubscribe: (() => void) | null = null;
  /** One chain per guest, so a guest's events are recorded in the order QEMU sent them. */
  private readonly chains = new KeyedChain();
  recorded = 0;

  constructor(
    @inject(ComputeDriver) private readonly driver: ComputeDriver,
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(PowerStateSync) private readonly sync: PowerStateSync,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'guest-run-events' });
  }

  /** Starts listening (before the driver connects, so no event of the first connections is missed). */
  start(): void {
    this.unsubscribe ??= this.driver.onGuestRunEvent?.((e) => this.enqueue(e)) ?? null;
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.chains.settled();
  }

  private enqueue(e: GuestRunEvent): void {
    this.chains.run(e.name, () => this.record(e)).catch((err: unknown) => this.log.error({ err, instance_name: e.name, event: e.event }, 'guest run event not recorded'));
  }

  private async record(e: GuestRunEvent): Promise<void> {
    // A guest that appeared after start-up has no row until it is discovered: look once.
    const row = (await this.stores.instances.getByName(e.name)) ?? (await this.sync.discover(), await this.stores.instances.getByName(e.name));
    const details = describeRunEvent(e);
    if (e.duringOperation && e.event !== 'GUEST_PANICKED' && e.event !== 'GUEST_CRASHLOADED') {
      // A stop, start or reboot of ours: the caller's own action and event already say why.
      this.log.debug({ instance_name: e.name, event: e.event, details }, 'guest run event caused by a power operation in progress');
      return;
    }
    if (!row) {
      this.log.info({ instance_name: e.name, event: e.event, details }, 'guest run event for a guest with no instance row');
      return;
    }
    const ctx = adminContext(`req-${randomUUID()}`);
    const failure = e.event === 'GUEST_PANICKED' || e.event === 'GUEST_CRASHLOADED';
    // The action first: a store on Nova's database files an event without one under the instance's latest action.
    await this.stores.actions.actionStart(ctx, { instanceUuid: row.uuid, action: ACTIONS[e.event] });
    const handle = await this.stores.actions.eventStart(ctx, { instanceUuid: row.uuid, action: ACTIONS[e.event], event: e.event, host: this.settings.host });
    await this.stores.actions.eventFinish(ctx, handle, { result: failure ? 'Error' : 'Success', details, traceback: null });
    if (failure) {
      const what = e.event === 'GUEST_PANICKED' ? 'Guest panicked' : 'Guest loaded its crash kernel';
      await this.stores.faults.record({ instanceUuid: row.uuid, code: 500, message: `${what} (${e.event}, ${details})`.slice(0, 255), details, host: this.settings.host }, ctx);
    }
    this.recorded++;
    this.log.warn({ instance_uuid: row.uuid, event: e.event, reason: e.reason, guest: e.guest, action: e.action }, 'guest run event');
  }
}
