// Replays the write spool (src/db/spool.ts) into the database: the one place that maps each spooled
// operation name back to the repository call it stands for. A batch goes in one transaction; a batch
// that fails for a reason other than the database being away goes entry by entry.

import type { InstanceStatesUpdate, InstanceStore } from '../compute/tokens.js';
import type { Logger } from '../logging.js';
import { isDatabaseUnavailable } from './availability.js';
import { KnexDiagnosticsRepository, type DiagnosticsSnapshotInput } from './diagnostics-repository.js';
import { KnexInstanceActionRepository } from './instance-action-repository.js';
import { KnexInstanceFaultRepository } from './instance-fault-repository.js';
import { KnexInstanceRepository } from './instance-repository.js';
import type { Database } from './knex.js';
import { KnexMonitorAuditRepository } from './monitor-audit-repository.js';
import { isLocalId, type ApplyResult, type SpoolApplier, type SpoolEntry } from './spool.js';

/** The writes that may wait in the spool, by the name they are spooled under. */
export type SpooledOp =
  | 'instances.upsert'
  | 'instances.updateStates'
  | 'faults.record'
  | 'actions.start'
  | 'actions.startEvent'
  | 'actions.finishEvent'
  | 'diagnostics.record'
  | 'audit.begin'
  | 'audit.finish';

export type UpsertArgs = Parameters<InstanceStore['upsert']>[0] & { id: number };

interface Repos {
  instances: KnexInstanceRepository;
  faults: KnexInstanceFaultRepository;
  actions: KnexInstanceActionRepository;
  diagnostics: KnexDiagnosticsRepository;
  audit: KnexMonitorAuditRepository;
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

/** Runs one spooled write against `repos`; returns the id it created, if the op creates one. */
async function applyEntry(repos: Repos, e: SpoolEntry, resolve: (id: number) => number): Promise<number | undefined> {
  const a = e.args as Record<string, unknown>;
  const id = (k: string): number => resolve(a[k] as number);
  switch (e.op as SpooledOp) {
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
      await repos.actions.finishEvent(id('eventId'), a['result'] as 'Success' | 'Error', (a['traceback'] as string | null) ?? null, (a['details'] as string | null) ?? null);
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

/** Replays spool entries; an entry the database refuses for good is logged and set aside. */
export class SpoolReplayer implements SpoolApplier {
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
    // Ids created earlier in this batch are not in the spool's map yet.
    const resolveHere = (id: number): number => (isLocalId(id) && created.has(-id) ? (created.get(-id) as number) : resolve(id));
    if (await this.inOneTransaction(entries, resolveHere, created)) return created;
    created.clear();
    await this.oneByOne(entries, resolveHere, created);
    return created;
  }

  /** True when the whole batch committed; false when it must be retried entry by entry. */
  private async inOneTransaction(entries: readonly SpoolEntry[], resolve: (id: number) => number, created: ApplyResult): Promise<boolean> {
    const within = (trx: Database['knex']): Database => ({ ...this.db, knex: trx, ping: (ms) => this.db.ping(ms), close: () => Promise.resolve() });
    try {
      await this.db.knex.transaction(async (trx) => {
        const repos = reposOver(within(trx));
        for (const e of entries) {
          const id = await applyEntry(repos, e, resolve);
          if (id !== undefined) created.set(e.seq, id);
        }
      });
      return true;
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw err;
      this.log.warn({ err: String(err) }, 'a spooled batch failed; replaying it entry by entry');
      return false;
    }
  }

  private async oneByOne(entries: readonly SpoolEntry[], resolve: (id: number) => number, created: ApplyResult): Promise<void> {
    const repos = reposOver(this.db);
    for (const e of entries) {
      try {
        const id = await applyEntry(repos, e, resolve);
        if (id !== undefined) created.set(e.seq, id);
      } catch (err) {
        if (isDatabaseUnavailable(err)) throw err;
        // A write the database refuses for good (a vanished parent row, a bad value) must not block the rest.
        this.deadLettered++;
        const uuid = (e.args as { instanceUuid?: unknown; uuid?: unknown }).instanceUuid ?? (e.args as { uuid?: unknown }).uuid;
        this.log.error({ err: String(err), seq: e.seq, op: e.op, at: e.at, instance_uuid: uuid, args: e.args }, 'spooled write refused by the database; set aside');
      }
    }
  }
}
