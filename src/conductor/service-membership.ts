// Membership of a Nova cloud as `nova-compute` on this host, as nova/service.py and the servicegroup db
// driver do it: wait for a conductor, find or create the Service row (SERVICE_VERSION 64 = Zed), then
// bump report_count every report_interval so nova-api shows the host up. A disabled service keeps
// reporting and serving its instances, as Nova's does; only the scheduler stops placing new ones.

import type { Logger } from '../logging.js';
import { MessagingTimeout } from '../rpc/client.js';
import { type ConductorClient, conductorAdminContext, isConductorError, objectVersion } from './client.js';
import { RemoteObject } from './remote-object.js';

/** nova/objects/service.py SERVICE_VERSION of Zed: compute RPC 6.1. */
export const SERVICE_VERSION = 64;
/** nova/servicegroup/api.py INITIAL_REPORTING_DELAY. */
const INITIAL_REPORTING_DELAY_S = 5;

export interface ServiceMembershipOptions {
  host: string;
  /** [DEFAULT] report_interval, seconds; 0 = no heartbeat (as Nova). */
  reportInterval: number;
  logger: Logger;
  /** How long start-up waits for a conductor to answer the ping; default forever (Nova waits forever). */
  conductorWaitMs?: number;
  /** Timeout of each ping while waiting; default 10 s. */
  pingTimeoutMs?: number;
  binary?: string;
  topic?: string;
}

export interface ServiceStatus {
  id: number | null;
  uuid: string | null;
  disabled: boolean;
  disabledReason: string | null;
  forcedDown: boolean;
  reportCount: number;
  /** True while the last heartbeat failed (Nova's model_disconnected). */
  disconnected: boolean;
  heartbeats: number;
}

export class ServiceMembership {
  private readonly log: Logger;
  private service: RemoteObject | null = null;
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private closed = false;
  private disconnected = false;
  private heartbeats = 0;
  private readonly binary: string;
  private readonly topic: string;

  constructor(
    private readonly conductor: ConductorClient,
    private readonly opts: ServiceMembershipOptions,
  ) {
    this.log = opts.logger.child({ component: 'service-membership' });
    this.binary = opts.binary ?? 'nova-compute';
    this.topic = opts.topic ?? 'compute';
  }

  /** Nova's Service.__init__ (conductor wait_until_ready) and Service.start (row, then the heartbeat). */
  async join(): Promise<void> {
    await this.waitForConductor();
    const ctx = conductorAdminContext();
    const found = await this.conductor.classAction(ctx, 'Service', 'get_by_host_and_binary', [this.opts.host, this.binary]);
    if (found !== null && found !== undefined) {
      this.service = RemoteObject.fromPrimitive(found, 'Service');
      await this.updateVersion();
    } else {
      try {
        this.service = await this.create();
      } catch (err) {
        // A sibling process created it first (Nova's ServiceTopicExists / ServiceBinaryExists race).
        if (!isConductorError(err, 'ServiceTopicExists') && !isConductorError(err, 'ServiceBinaryExists')) throw err;
        const again = await this.conductor.classAction(ctx, 'Service', 'get_by_host_and_binary', [this.opts.host, this.binary]);
        this.service = RemoteObject.fromPrimitive(again, 'Service');
      }
    }
    const st = this.status();
    this.log.info({ host: this.opts.host, binary: this.binary, service_id: st.id, disabled: st.disabled, disabled_reason: st.disabledReason }, 'joined the cloud');
    if (st.disabled) this.log.warn({ disabled_reason: st.disabledReason }, 'this compute service is disabled: instances here keep being served, new ones are not scheduled');
    this.schedule(Math.min(INITIAL_REPORTING_DELAY_S, this.opts.reportInterval || INITIAL_REPORTING_DELAY_S));
  }

  status(): ServiceStatus {
    const s = this.service;
    const num = (f: string): number | null => (typeof s?.get(f) === 'number' ? (s.get(f) as number) : null);
    const str = (f: string): string | null => (typeof s?.get(f) === 'string' ? (s.get(f) as string) : null);
    return {
      id: num('id'),
      uuid: str('uuid'),
      disabled: s?.get('disabled') === true,
      disabledReason: str('disabled_reason'),
      forcedDown: s?.get('forced_down') === true,
      reportCount: num('report_count') ?? 0,
      disconnected: this.disconnected,
      heartbeats: this.heartbeats,
    };
  }

  /** One heartbeat now (servicegroup db driver's _report_state). Errors are logged, never thrown. */
  async beat(): Promise<void> {
    const s = this.service;
    if (!s) return;
    const before = this.status();
    s.set('report_count', before.reportCount + 1);
    try {
      await this.conductor.objectAction(conductorAdminContext(), s, 'save');
      this.heartbeats++;
      if (this.disconnected) this.log.info('Recovered from being unable to report status.');
      this.disconnected = false;
      const after = this.status();
      if (after.disabled !== before.disabled || after.forcedDown !== before.forcedDown) {
        this.log.warn({ disabled: after.disabled, disabled_reason: after.disabledReason, forced_down: after.forcedDown }, 'service status changed by the control plane');
      }
    } catch (err) {
      s.resetChanges();
      if (err instanceof MessagingTimeout) {
        if (!this.disconnected) this.log.warn('Lost connection to nova-conductor for reporting service status.');
      } else if (isConductorError(err, 'ServiceNotFound')) {
        this.log.error(
          { host: this.opts.host, binary: this.binary },
          'The services table record for this service is gone. Stop this service if it should be deleted, or restart it to recreate the record.',
        );
      } else {
        this.log.error({ err }, 'Unexpected error while reporting service status');
      }
      this.disconnected = true;
    }
  }

  /** Stops reporting; the row stays, so nova-api shows the host down after service_down_time (as Nova). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.beating;
  }

  private schedule(delaySeconds: number): void {
    if (this.closed || this.opts.reportInterval <= 0) return;
    this.timer = setTimeout(() => {
      this.beating = this.beat().finally(() => {
        this.beating = null;
        this.schedule(this.opts.reportInterval);
      });
    }, delaySeconds * 1000);
    this.timer.unref();
  }

  private async create(): Promise<RemoteObject> {
    const s = RemoteObject.create('Service', objectVersion('Service'), {
      host: this.opts.host,
      binary: this.binary,
      topic: this.topic,
      report_count: 0,
      version: SERVICE_VERSION,
    });
    await this.conductor.objectAction(conductorAdminContext(), s, 'create');
    return s;
  }

  /** nova/service.py _update_service_ref: record this service's version when the row has another. */
  private async updateVersion(): Promise<void> {
    const s = this.service;
    if (!s || s.get('version') === SERVICE_VERSION) return;
    this.log.info({ old: s.get('version'), new: SERVICE_VERSION }, 'Updating service version');
    s.set('version', SERVICE_VERSION);
    await this.conductor.objectAction(conductorAdminContext(), s, 'save');
  }

  private async waitForConductor(): Promise<void> {
    const started = Date.now();
    const limit = this.opts.conductorWaitMs ?? Number.POSITIVE_INFINITY;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.conductor.ping(this.opts.pingTimeoutMs ?? 10_000);
        if (attempt > 1) this.log.info('nova-conductor connection established successfully');
        return;
      } catch (err) {
        if (!(err instanceof MessagingTimeout)) throw err;
        if (Date.now() - started >= limit || this.closed) throw err;
        this.log.warn({ attempt }, 'Timed out waiting for nova-conductor. Is it running? Or did this service start before nova-conductor?');
      }
    }
  }
}
