// instance_diagnostics: snapshots of an instance's Diagnostics (and the legacy dict) as the monitor
// reported them. record() goes through a write-behind batcher, so a host with many guests writes one
// multi-row INSERT per batch instead of one per snapshot; it still resolves only after the commit.

import type { Diagnostics, LegacyDiagnostics } from '../virt/driver.js';
import { WriteBehindBatcher } from './batcher.js';
import { type Database } from './knex.js';
import { affectedRows, dateCol, intCol, jsonCol, jsonParam, optStrCol, strCol, type DbRow } from './rows.js';

export interface DiagnosticsSnapshotInput {
  instanceUuid: string;
  host?: string | null;
  /** Default: now. */
  capturedAt?: Date;
  /** Diagnostics.state (running, paused, ...). */
  state?: string | null;
  diagnostics?: Diagnostics | null;
  legacy?: LegacyDiagnostics | null;
}

export interface DiagnosticsSnapshotRow {
  id: number;
  instanceUuid: string;
  host: string | null;
  capturedAt: Date;
  state: string | null;
  diagnostics: Diagnostics | null;
  legacy: LegacyDiagnostics | null;
}

export interface DiagnosticsBatching {
  maxDelayMs: number;
  maxRows: number;
}

export interface DiagnosticsRepository {
  /** Batched write; resolves once the snapshot is committed. */
  record(snapshot: DiagnosticsSnapshotInput): Promise<void>;
  /** One multi-row INSERT, now. */
  recordMany(snapshots: readonly DiagnosticsSnapshotInput[]): Promise<void>;
  latest(instanceUuid: string): Promise<DiagnosticsSnapshotRow | null>;
  /** Newest first. */
  listForInstance(instanceUuid: string, opts?: { limit?: number }): Promise<DiagnosticsSnapshotRow[]>;
  /**
   * Retention: drops snapshots captured before `cutoff` (only `host`'s when given), `batchSize` rows per
   * statement so no single DELETE holds its locks for long; returns how many.
   */
  deleteOlderThan(cutoff: Date, opts?: { host?: string; batchSize?: number }): Promise<number>;
  /** Writes what the batcher still holds and refuses further record() calls. */
  close(): Promise<void>;
}

export function diagnosticsFromRow(row: DbRow): DiagnosticsSnapshotRow {
  return {
    id: intCol(row, 'id'),
    instanceUuid: strCol(row, 'instance_uuid'),
    host: optStrCol(row, 'host'),
    capturedAt: dateCol(row, 'captured_at'),
    state: optStrCol(row, 'state'),
    diagnostics: jsonCol<Diagnostics>(row, 'diagnostics'),
    legacy: jsonCol<LegacyDiagnostics>(row, 'legacy'),
  };
}

export function diagnosticsToRow(s: DiagnosticsSnapshotInput): DbRow {
  return {
    instance_uuid: s.instanceUuid,
    host: s.host ?? null,
    captured_at: s.capturedAt ?? new Date(),
    state: s.state ?? s.diagnostics?.state ?? null,
    diagnostics: jsonParam(s.diagnostics),
    legacy: jsonParam(s.legacy),
  };
}

const TABLE = 'instance_diagnostics';

export class KnexDiagnosticsRepository implements DiagnosticsRepository {
  private readonly batcher: WriteBehindBatcher<DiagnosticsSnapshotInput>;

  constructor(
    private readonly db: Database,
    batching?: DiagnosticsBatching,
  ) {
    this.batcher = new WriteBehindBatcher({
      maxDelayMs: batching?.maxDelayMs ?? 50,
      maxRows: batching?.maxRows ?? 200,
      write: (rows) => this.recordMany(rows),
    });
  }

  record(snapshot: DiagnosticsSnapshotInput): Promise<void> {
    return this.batcher.add(snapshot);
  }

  async recordMany(snapshots: readonly DiagnosticsSnapshotInput[]): Promise<void> {
    if (snapshots.length === 0) return;
    await this.db.knex(TABLE).insert(snapshots.map(diagnosticsToRow));
  }

  async latest(instanceUuid: string): Promise<DiagnosticsSnapshotRow | null> {
    const rows = await this.listForInstance(instanceUuid, { limit: 1 });
    return rows[0] ?? null;
  }

  async listForInstance(instanceUuid: string, opts: { limit?: number } = {}): Promise<DiagnosticsSnapshotRow[]> {
    const q = this.db.knex(TABLE).where({ instance_uuid: instanceUuid }).orderBy([
      { column: 'captured_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
    if (opts.limit !== undefined) q.limit(opts.limit);
    return ((await q) as DbRow[]).map(diagnosticsFromRow);
  }

  async deleteOlderThan(cutoff: Date, opts: { host?: string; batchSize?: number } = {}): Promise<number> {
    const batch = opts.batchSize ?? 5000;
    let total = 0;
    for (;;) {
      const doomed = this.db.knex(TABLE).select('id').where('captured_at', '<', cutoff).limit(batch);
      if (opts.host !== undefined) doomed.andWhere({ host: opts.host });
      const n = affectedRows(await this.db.knex(TABLE).whereIn('id', doomed).delete());
      total += n;
      if (n < batch) return total;
    }
  }

  close(): Promise<void> {
    return this.batcher.close();
  }
}
