// The compute layer's stores (src/compute/tokens.ts) on top of the knex repositories: one place that
// says which repository call each compute need maps to. With a spool directory, writes that must not be
// lost (states, actions and events, faults, diagnostics, monitor audit) fall back to the crash-safe spool
// while the database is unreachable and replay in order when it returns; instance reads fall back to a
// cache of the rows this host read or wrote, so calls the monitor can answer keep being answered.

import type { ComputeStoresShape, InstanceRecord, InstanceStatesUpdate } from '../compute/tokens.js';
import { NovaException } from '../exception.js';
import type { Logger } from '../logging.js';
import { KnexConsoleAuthTokenRepository } from './console-auth-token-repository.js';
import { KnexDiagnosticsRepository, type DiagnosticsSnapshotInput } from './diagnostics-repository.js';
import { KnexInstanceActionRepository } from './instance-action-repository.js';
import { KnexInstanceFaultRepository } from './instance-fault-repository.js';
import { KnexInstanceRepository, type InstanceRow } from './instance-repository.js';
import type { Database } from './knex.js';
import { KnexMonitorAuditRepository } from './monitor-audit-repository.js';
import { isLocalId, WriteSpool, type ApplyResult, type SpoolApplier, type SpoolEntry } from './spool.js';

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

/** A read that needed the database while it was away, for an instance this process has not seen. */
export class DatabaseUnavailable extends NovaException {
  override readonly code = 503;
  constructor(what: string, options?: { cause?: unknown }) {
    super(`The database is unavailable: ${what}`, { err: 'database unavailable' }, options);
  }
  override get className(): string {
    return 'InternalError';
  }
}

export interface SpoolStats {
  pending: number;
  bytes: number;
  capacityBytes: number;
  replayed: number;
  spooled: number;
  deadLettered: number;
}

export interface ComputeStoresWithClose extends ComputeStoresShape {
  /** Flushes batched writes, tries to replay the spool for a moment, closes it. */
  close(): Promise<void>;
  /** The spool's state, or null when the stores run without one. */
  spoolStats(): SpoolStats | null;
}

export interface ComputeStoresOptions {
  /** Directory of the crash-safe write spool (`<state_path>/spool`); omitted = no spool, writes fail with the database. */
  spoolDir?: string;
  /** Bound on the spool; default 64 MiB. */
  spoolMaxBytes?: number;
  /** First replay retry delay while the database is away; default 500 ms. */
  spoolRetryIntervalMs?: number;
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_TEXT =
  /Connection terminated|Timeout acquiring a connection|connection error|not queryable|ECONNREFUSED|ECONNRESET|database did not answer|the database system is (shutting down|starting up)|terminating connection|Query read timeout|connect ETIMEDOUT|Connection ended unexpectedly/i;

/** True for errors that mean "the database is not reachable now" rather than "this write is wrong". */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
    const name = (e as { name?: unknown }).name;
    if (name === 'KnexTimeoutError') return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && UNAVAILABLE_TEXT.test(message)) return true;
  }
  return false;
}

type Op =
  | 'instances.upsert'
  | 'instances.updateStates'
  | 'faults.record'
  | 'actions.start'
  | 'actions.startEvent'
  | 'actions.finishEvent'
  | 'diagnostics.record'
  | 'audit.begin'
  | 'audit.finish';

interface Repos {
  instances: KnexInstanceRepository;
  faults: KnexInstanceFaultRepository;
  actions: KnexInstanceActionRepository;
  diagnostics: KnexDiagnosticsRepository;
  audit: KnexMonitorAuditRepository;
}

type UpsertArgs = Parameters<ComputeStoresShape['instances']['upsert']>[0] & { id: number };

/** Runs one spooled write against `repos`; returns the id it created, if the op creates one. */
async function applyEntry(repos: Repos, e: SpoolEntry, resolve: (id: number) => number): Promise<number | undefined> {
  const a = e.args as Record<string, unknown>;
  const id = (k: string): number => resolve(a[k] as number);
  switch (e.op as Op) {
    case 'instances.upsert':
      await repos.instances.upsertFromRpc(a as unknown as UpsertArgs);
      return undefined;
    case 'instances.updateStates':
      await repos.instances.updateStates(a['uuid'] as string, a['update'] as InstanceStatesUpdate);
      return undefined;
    case 'faults.record':
      await repos.faults.record(a as unknown as Parameters<KnexInstanceFaultRepository['record']>[0]);
      return undefined;
    case 'actions.start':
      return repos.actions.start(a as unknown as Parameters<KnexInstanceActionRepository['start']>[0]);
    case 'actions.startEvent':
      return repos.actions.startEvent(id('actionId'), a['event'] as string, a['host'] as string);
    case 'actions.finishEvent':
      await repos.actions.finishEvent(id('eventId'), a['result'] as 'Success' | 'Error', (a['traceback'] as string | null) ?? null);
      return undefined;
    case 'diagnostics.record': {
      const s = a as unknown as DiagnosticsSnapshotInput & { capturedAt?: string };
      await repos.diagnostics.recordMany([{ ...s, capturedAt: new Date(s.capturedAt ?? e.at) }]);
      return undefined;
    }
    case 'audit.begin':
      return repos.audit.begin(a as unknown as Parameters<KnexMonitorAuditRepository['begin']>[0]);
    case 'audit.finish':
      await repos.audit.finish(id('id'), a['outcome'] as Parameters<KnexMonitorAuditRepository['finish']>[1]);
      return undefined;
    default:
      throw new Error(`unknown spooled operation ${e.op}`);
  }
}

function reposOver(db: Database): Repos {
  return {
    instances: new KnexInstanceRepository(db),
    faults: new KnexInstanceFaultRepository(db),
    actions: new KnexInstanceActionRepository(db),
    diagnostics: new KnexDiagnosticsRepository(db, { maxDelayMs: 0, maxRows: 1 }),
    audit: new KnexMonitorAuditRepository(db),
  };
}

/** Replays spool entries: a batch in one transaction; a batch that fails for a reason other than the database being away goes entry by entry, and an entry that still fails is logged and set aside. */
class SpoolReplayer implements SpoolApplier {
  deadLettered = 0;
  constructor(
    private readonly db: Database,
    private readonly log: Logger,
  ) {}

  isUnavailable(err: unknown): boolean {
    return isDatabaseUnavailable(err);
  }

  async apply(entries: readonly SpoolEntry[], resolve: (id: number) => number): Promise<ApplyResult> {
    const created: ApplyResult = new Map();
    const within = (trx: Database['knex']): Database => ({ ...this.db, knex: trx, ping: (ms) => this.db.ping(ms), close: () => Promise.resolve() });
    // Ids created earlier in this batch are not in the spool's map yet.
    const resolveHere = (id: number): number => (isLocalId(id) && created.has(-id) ? (created.get(-id) as number) : resolve(id));
    try {
      await this.db.knex.transaction(async (trx) => {
        const repos = reposOver(within(trx));
        for (const e of entries) {
          const id = await applyEntry(repos, e, resolveHere);
          if (id !== undefined) created.set(e.seq, id);
        }
      });
      return created;
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw err;
      created.clear();
      this.log.warn({ err: String(err) }, 'a spooled batch failed; replaying it entry by entry');
    }
    const repos = reposOver(this.db);
    for (const e of entries) {
      try {
        const id = await applyEntry(repos, e, resolveHere);
        if (id !== undefined) created.set(e.seq, id);
      } catch (err) {
        if (isDatabaseUnavailable(err)) throw err;
        // A write the database refuses for good (a vanished parent row, a bad value) must not block the rest.
        this.deadLettered++;
        const uuid = (e.args as { instanceUuid?: unknown; uuid?: unknown }).instanceUuid ?? (e.args as { uuid?: unknown }).uuid;
        this.log.error({ err: String(err), seq: e.seq, op: e.op, at: e.at, instance_uuid: uuid, args: e.args }, 'spooled write refused by the database; set aside');
      }
    }
    return created;
  }
}

const CACHE_LIMIT = 10_000;

export function createComputeStores(db: Database, logger?: Logger, options: ComputeStoresOptions = {}): ComputeStoresWithClose {
  const instances = new KnexInstanceRepository(db);
  const faults = new KnexInstanceFaultRepository(db);
  const actions = new KnexInstanceActionRepository(db);
  const tokens = new KnexConsoleAuthTokenRepository(db);
  const diagnostics = new KnexDiagnosticsRepository(db);
  const audit = new KnexMonitorAuditRepository(db);
  const log = logger?.child({ component: 'compute-stores' });

  let spool: WriteSpool | null = null;
  let replayer: SpoolReplayer | null = null;
  let spooled = 0;
  if (options.spoolDir !== undefined && log) {
    spool = WriteSpool.openSync({
      dir: options.spoolDir,
      logger: log,
      ...(options.spoolMaxBytes === undefined ? {} : { maxBytes: options.spoolMaxBytes }),
      ...(options.spoolRetryIntervalMs === undefined ? {} : { retryIntervalMs: options.spoolRetryIntervalMs }),
    });
    replayer = new SpoolReplayer(db, log);
    spool.start(replayer);
  }

  // Rows this host read or wrote, with every write applied (spooled ones too): the answer while the database is away.
  const byUuid = new Map<string, InstanceRecord>();
  const uuidByName = new Map<string, string>();
  const remember = (r: InstanceRecord): InstanceRecord => {
    if (byUuid.size >= CACHE_LIMIT && !byUuid.has(r.uuid)) {
      byUuid.clear();
      uuidByName.clear();
    }
    byUuid.set(r.uuid, r);
    uuidByName.set(r.name, r.uuid);
    return r;
  };
  const patch = (uuid: string, update: InstanceStatesUpdate): void => {
    const r = byUuid.get(uuid);
    if (!r) return;
    byUuid.set(uuid, {
      ...r,
      ...(update.powerState === undefined ? {} : { powerState: update.powerState }),
      ...(update.vmState === undefined ? {} : { vmState: update.vmState }),
      ...(update.taskState === undefined ? {} : { taskState: update.taskState }),
    });
  };

  /**
   * A write that must not be lost: straight to the database while it answers and nothing is spooled
   * (order), else into the spool. `refs` are ids the write points at; one not yet applied forces the spool.
   */
  async function durable<T>(op: Op, args: Record<string, unknown>, refs: number[], direct: () => Promise<T>, fromSeq: (seq: number) => T): Promise<T> {
    if (!spool) return direct();
    const s = spool;
    const mustSpool = s.pending > 0 || refs.some((id) => s.isUnresolved(id));
    if (!mustSpool) {
      try {
        return await direct();
      } catch (err) {
        if (!isDatabaseUnavailable(err)) throw err;
        log?.warn({ err: String(err), op }, 'database unavailable; spooling the write');
      }
    }
    const seq = await s.append(op, args);
    spooled++;
    return fromSeq(seq);
  }
  const rid = (id: number): number => (spool ? spool.resolveId(id) : id);

  async function read<T>(what: string, fromDb: () => Promise<T>, fromCache: () => T | undefined): Promise<T> {
    // While writes wait in the spool the database is behind this host's own writes: the cache is newer.
    if (spool && spool.pending > 0) {
      const cached = fromCache();
      if (cached !== undefined) return cached;
    }
    try {
      return await fromDb();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      const cached = fromCache();
      if (cached !== undefined) return cached;
      throw new DatabaseUnavailable(what, { cause: err });
    }
  }

  return {
    instances: {
      getByUuid: (uuid) =>
        read(
          `instance ${uuid} is not known to this service yet`,
          async () => {
            const row = await instances.getByUuid(uuid);
            return row ? remember(record(row)) : null;
          },
          () => byUuid.get(uuid),
        ),
      getByName: (name) =>
        read(
          `instance ${name} is not known to this service yet`,
          async () => {
            const row = await instances.getByName(name);
            return row ? remember(record(row)) : null;
          },
          () => {
            const uuid = uuidByName.get(name);
            return uuid === undefined ? undefined : byUuid.get(uuid);
          },
        ),
      listByHost: async (host) => {
        try {
          return (await instances.list({ host })).map((r) => remember(record(r)));
        } catch (err) {
          if (!isDatabaseUnavailable(err)) throw err;
          log?.warn({ err: String(err) }, 'database unavailable; listing instances from the cache');
          return [...byUuid.values()].filter((r) => r.host === host);
        }
      },
      upsert: async (row) => {
        if (row.id === null) throw new Error(`instance ${row.name} has no id: its name does not carry one`);
        const args: UpsertArgs = { ...row, id: row.id };
        return remember(
          await durable('instances.upsert', args, [], async () => record(await instances.upsertFromRpc(args)), () => ({
            uuid: row.uuid,
            id: row.id,
            name: row.name,
            host: row.host,
            vmState: row.vmState ?? null,
            taskState: row.taskState ?? null,
            powerState: row.powerState ?? null,
            projectId: row.projectId ?? null,
            userId: row.userId ?? null,
          })),
        );
      },
      updateStates: async (uuid, update) => {
        patch(uuid, update);
        await durable('instances.updateStates', { uuid, update }, [], async () => void (await instances.updateStates(uuid, update)), () => undefined);
      },
    },
    faults: {
      record: async (fault) => {
        await durable('faults.record', fault, [], async () => void (await faults.record(fault)), () => undefined);
      },
    },
    actions: {
      start: (action) => durable('actions.start', action, [], () => actions.start(action), (seq) => -seq),
      startEvent: (actionId, event, host) =>
        durable('actions.startEvent', { actionId: rid(actionId), event, host }, [actionId], () => actions.startEvent(rid(actionId), event, host), (seq) => -seq),
      finishEvent: (actionId, eventId, result, traceback) =>
        durable(
          'actions.finishEvent',
          { actionId: rid(actionId), eventId: rid(eventId), result, traceback },
          [actionId, eventId],
          // finishEvent also closes the action once its last event is done: one transaction, no second trip.
          () => actions.finishEvent(rid(eventId), result, traceback),
          () => undefined,
        ),
    },
    tokens: {
      create: async (token) => {
        // Not spooled: a console token the proxy cannot read from the database would be useless anyway.
        await tokens.create(token);
      },
    },
    diagnostics: {
      record: (snapshot) => {
        const capturedAt = new Date().toISOString();
        return durable('diagnostics.record', { ...snapshot, capturedAt }, [], () => diagnostics.record({ ...snapshot, capturedAt: new Date(capturedAt) }), () => undefined);
      },
    },
    audit: {
      // Durable before the command runs: in the database, or fsynced in the spool; otherwise begin() throws
      // and the manager refuses the command.
      begin: (entry) => durable('audit.begin', entry, [], () => audit.begin(entry), (seq) => -seq),
      finish: (id, outcome) => durable('audit.finish', { id: rid(id), outcome }, [id], () => audit.finish(rid(id), outcome), () => undefined),
    },
    spoolStats: () =>
      spool
        ? { pending: spool.pending, bytes: spool.bytes, capacityBytes: spool.capacityBytes, replayed: spool.replayed, spooled, deadLettered: replayer?.deadLettered ?? 0 }
        : null,
    close: async () => {
      await diagnostics.close();
      await spool?.close();
    },
  };
}
