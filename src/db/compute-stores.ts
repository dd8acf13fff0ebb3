// The compute layer's stores (src/compute/tokens.ts) on top of the knex repositories: which repository
// call each compute need maps to, and which writes may wait in the spool (DurableWrites) while the
// database is unreachable. Instance reads fall back to a cache of the rows this host read or wrote, so
// calls the monitor can answer keep being answered. Put together in src/main/compute-stores.ts.

import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { RequestContext } from '../context.js';
import type {
  ActionEventHandle,
  ActionStore,
  ConsoleTokenStore,
  DiagnosticsStore,
  FaultStore,
  InstanceRecord,
  InstanceStatesUpdate,
  InstanceStore,
  MonitorAuditStore,
} from '../compute/tokens.js';
import type { Logger } from '../logging.js';
import { isDatabaseUnavailable } from './availability.js';
import { WriteBehindBatcher } from './batcher.js';
import { checkTokenInput, type ConsoleAuthTokenInput, type KnexConsoleAuthTokenRepository } from './console-auth-token-repository.js';
import type { KnexDiagnosticsRepository } from './diagnostics-repository.js';
import type { DurableWrites } from './durable-writes.js';
import type { InstanceCache } from './instance-cache.js';
import type { KnexInstanceActionRepository } from './instance-action-repository.js';
import type { KnexInstanceFaultRepository } from './instance-fault-repository.js';
import type { InstanceRow, KnexInstanceRepository } from './instance-repository.js';
import type { KnexMonitorAuditRepository } from './monitor-audit-repository.js';
import type { UpsertArgs } from './spool-replayer.js';

function record(row: InstanceRow): InstanceRecord {
  return {
    uuid: row.uuid,
    id: row.id,
    name: row.name,
    host: row.host,
    vmState: row.vmState,
    taskState: row.taskState,
    powerState: row.powerState,
    projectId: row.projectId,
    userId: row.userId,
  };
}

export class DatabaseInstanceStore implements InstanceStore {
  constructor(
    private readonly repo: KnexInstanceRepository,
    private readonly writes: DurableWrites,
    private readonly cache: InstanceCache,
    private readonly log?: Logger,
  ) {}

  getByUuid(uuid: string): Promise<InstanceRecord | null> {
    return this.writes.read(`instance ${uuid} is not known to this service yet`, async () => this.remembered(await this.repo.getByUuid(uuid)), () => this.cache.get(uuid));
  }

  getByName(name: string): Promise<InstanceRecord | null> {
    return this.writes.read(`instance ${name} is not known to this service yet`, async () => this.remembered(await this.repo.getByName(name)), () => this.cache.getByName(name));
  }

  async listByHost(host: string): Promise<InstanceRecord[]> {
    try {
      return (await this.repo.list({ host })).map((r) => this.cache.remember(record(r)));
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      this.log?.warn({ err: String(err) }, 'database unavailable; listing instances from the cache');
      return this.cache.onHost(host);
    }
  }

  /** Straight from the database (no cache): what novamon-manage would read there itself. */
  async listRows(filter: { host?: string }): Promise<Array<Record<string, unknown>>> {
    const rows = await this.repo.list(filter.host === undefined ? {} : { host: filter.host });
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : (v as unknown)])));
  }

  /** novamon's own rows are the record here: the caller's Instance object adds nothing to keep. */
  track(): void {}

  details(uuid: string): Record<string, unknown> | null {
    const r = this.cache.get(uuid);
    return r
      ? { uuid: r.uuid, id: r.id, host: r.host, vm_state: r.vmState, task_state: r.taskState, power_state: r.powerState, project_id: r.projectId, user_id: r.userId }
      : null;
  }

  async upsert(row: Parameters<InstanceStore['upsert']>[0]): Promise<InstanceRecord> {
    if (row.id === null) throw new Error(`instance ${row.name} has no id: its name does not carry one`);
    const args: UpsertArgs = { ...row, id: row.id };
    const spooled = (): InstanceRecord => ({
      uuid: row.uuid,
      id: row.id,
      name: row.name,
      host: row.host,
      vmState: row.vmState ?? null,
      taskState: row.taskState ?? null,
      powerState: row.powerState ?? null,
      projectId: row.projectId ?? null,
      userId: row.userId ?? null,
    });
    return this.cache.remember(await this.writes.write('instances.upsert', args, [], async () => record(await this.repo.upsertFromRpc(args)), spooled));
  }

  /** expected_task_state is not checked here: standalone callers (novamon-manage rpc call) set no task_state first. */
  async updateStates(uuid: string, { progress: _progress, ...update }: InstanceStatesUpdate): Promise<void> {
    this.cache.patch(uuid, update);
    await this.writes.write('instances.updateStates', { uuid, update }, [], async () => void (await this.repo.updateStates(uuid, update)), () => undefined);
  }

  /** updateStates as a statement not yet run, for a caller that writes it with another row; the cache as updateStates leaves it. */
  statesStatement(uuid: string, { progress: _progress, ...update }: InstanceStatesUpdate): Knex.QueryBuilder {
    this.cache.patch(uuid, update);
    return this.repo.statesUpdate(uuid, update);
  }

  private remembered(row: InstanceRow | null): InstanceRecord | null {
    return row ? this.cache.remember(record(row)) : null;
  }
}

export class DatabaseFaultStore implements FaultStore {
  constructor(
    private readonly repo: KnexInstanceFaultRepository,
    private readonly writes: DurableWrites,
  ) {}

  async record(fault: Parameters<FaultStore['record']>[0]): Promise<void> {
    await this.writes.write('faults.record', fault, [], async () => void (await this.repo.record(fault)), () => undefined);
  }
}

export class DatabaseActionStore implements ActionStore {
  constructor(
    private readonly repo: KnexInstanceActionRepository,
    private readonly writes: DurableWrites,
    private readonly instances: DatabaseInstanceStore,
  ) {}

  /**
   * Without an API in front (novamon-manage rpc call), the action of this request is created here, in
   * the same statement as its event while the database answers; through the spool as two writes if not.
   */
  async eventStart(ctx: RequestContext, e: Parameters<ActionStore['eventStart']>[1]): Promise<ActionEventHandle> {
    const row = this.actionRow(ctx, e.instanceUuid, e.action);
    const both = await this.writes.direct(() => this.repo.startWithEvent(row, e.event, e.host));
    if (both.value) return { instanceUuid: e.instanceUuid, event: e.event, ...both.value };
    const spool = { spool: both.tried };
    const actionId = await this.writes.write('actions.start', row, [], () => this.repo.start(row), (seq) => -seq, spool);
    const id = this.writes.resolveId(actionId);
    const eventId = await this.writes.write('actions.startEvent', { actionId: id, event: e.event, host: e.host }, [actionId], () => this.repo.startEvent(id, e.event, e.host), (seq) => -seq, spool);
    return { instanceUuid: e.instanceUuid, event: e.event, actionId, eventId };
  }

  eventFinish(_ctx: RequestContext, handle: ActionEventHandle, outcome: Parameters<ActionStore['eventFinish']>[2]): Promise<void> {
    const w = this.writes;
    const actionId = handle.actionId ?? 0;
    const eventId = handle.eventId ?? 0;
    const { result, traceback, details } = outcome;
    return w.write(
      'actions.finishEvent',
      { actionId: w.resolveId(actionId), eventId: w.resolveId(eventId), result, traceback, details },
      [actionId, eventId],
      // finishEvent also closes the action once its last event is done: one transaction, no second trip.
      () => this.repo.finishEvent(w.resolveId(eventId), result, traceback, details),
      () => undefined,
    );
  }

  /**
   * One statement while the database answers (the save and the finish commit together); the two spooled
   * writes, in that order, when it does not or earlier writes still wait. expected_task_state is not
   * checked, as in DatabaseInstanceStore.updateStates.
   */
  async saveAndFinishEvent(ctx: RequestContext, handle: ActionEventHandle, save: Parameters<NonNullable<ActionStore['saveAndFinishEvent']>>[2]): Promise<void> {
    const w = this.writes;
    const eventId = handle.eventId ?? 0;
    const both = await w.direct(
      async () => {
        await this.repo.finishEvent(w.resolveId(eventId), 'Success', null, null, this.instances.statesStatement(save.uuid, save.update));
        return true;
      },
      [handle.actionId ?? 0, eventId],
    );
    if (both.value) return;
    await this.instances.updateStates(save.uuid, save.update);
    await this.eventFinish(ctx, handle, { result: 'Success', details: null, traceback: null });
  }

  async actionStart(ctx: RequestContext, a: { instanceUuid: string; action: string }): Promise<void> {
    await this.start(ctx, a.instanceUuid, a.action);
  }

  /** The action of (instance, request id), created when missing; the id may be a spooled one. */
  private start(ctx: RequestContext, instanceUuid: string, action: string): Promise<number> {
    const row = this.actionRow(ctx, instanceUuid, action);
    return this.writes.write('actions.start', row, [], () => this.repo.start(row), (seq) => -seq);
  }

  private actionRow(ctx: RequestContext, instanceUuid: string, action: string) {
    return { action, instanceUuid, requestId: ctx.requestId ?? `req-${randomUUID()}`, userId: ctx.userId, projectId: ctx.projectId };
  }
}

/**
 * Console tokens go through a group-commit batcher: the tokens asked for while one INSERT is on its way
 * share the next one. authorize() still resolves only once its row is committed (the proxy must find it).
 */
export class DatabaseConsoleTokenStore implements ConsoleTokenStore {
  private readonly batcher: WriteBehindBatcher<ConsoleAuthTokenInput>;

  constructor(
    private readonly repo: KnexConsoleAuthTokenRepository,
    maxRows = 100,
  ) {
    this.batcher = new WriteBehindBatcher({ maxDelayMs: 0, maxRows, write: (rows) => repo.createMany(rows) });
  }

  cleanExpired(): Promise<number> {
    return this.repo.deleteExpired();
  }

  async authorize(t: Parameters<ConsoleTokenStore['authorize']>[0]): Promise<string> {
    // Not spooled: a console token the proxy cannot read from the database would be useless anyway.
    const input = { ...t, token: randomUUID() };
    checkTokenInput(input);
    await this.batcher.add(input);
    return input.token;
  }

  /** Writes the tokens still queued. */
  close(): Promise<void> {
    return this.batcher.close();
  }
}

export class DatabaseDiagnosticsStore implements DiagnosticsStore {
  constructor(
    private readonly repo: KnexDiagnosticsRepository,
    private readonly writes: DurableWrites,
  ) {}

  record(snapshot: Parameters<DiagnosticsStore['record']>[0]): Promise<void> {
    const capturedAt = new Date().toISOString();
    return this.writes.write('diagnostics.record', { ...snapshot, capturedAt }, [], () => this.repo.record({ ...snapshot, capturedAt: new Date(capturedAt) }), () => undefined);
  }

  deleteOlderThan(cutoff: Date, host: string): Promise<number> {
    return this.repo.deleteOlderThan(cutoff, { host });
  }

  /** Writes what the batcher still holds. */
  close(): Promise<void> {
    return this.repo.close();
  }
}

export class DatabaseMonitorAuditStore implements MonitorAuditStore {
  constructor(
    private readonly repo: KnexMonitorAuditRepository,
    private readonly writes: DurableWrites,
  ) {}

  // Durable before the command runs: in the database, or fsynced in the spool; otherwise begin() throws
  // and the manager refuses the command.
  begin(entry: Parameters<MonitorAuditStore['begin']>[0]): Promise<number> {
    return this.writes.write('audit.begin', entry, [], () => this.repo.begin(entry), (seq) => -seq);
  }

  finish(id: number, outcome: Parameters<MonitorAuditStore['finish']>[1]): Promise<void> {
    return this.writes.write('audit.finish', { id: this.writes.resolveId(id), outcome }, [id], () => this.repo.finish(this.writes.resolveId(id), outcome), () => undefined);
  }
}
