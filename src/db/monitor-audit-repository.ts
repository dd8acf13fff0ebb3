// monitor_audit: the durable trail of monitor (QMP/HMP) commands users sent through novamon. The caller
// awaits begin() before the command runs (a 'pending' row), then finish() with the outcome; a refused
// command is one record() call. Nothing here is batched: the row must be committed before QEMU sees
// the command.

import { type Database } from './knex.js';
import { boolCol, dateCol, intCol, jsonCol, jsonParam, optDateCol, optIntCol, optStrCol, strCol, toColumns, type DbRow } from './rows.js';

export type MonitorKind = 'qmp' | 'hmp';
export type MonitorAuditResult = 'pending' | 'ok' | 'error' | 'refused';

export interface MonitorAuditInput {
  instanceUuid?: string | null;
  instanceName?: string | null;
  host?: string | null;
  requestId?: string | null;
  userId?: string | null;
  projectId?: string | null;
  kind: MonitorKind;
  /** QMP `execute` name, or the HMP command line. */
  command: string;
  arguments?: Record<string, unknown> | null;
  allowed: boolean;
}

export interface MonitorAuditOutcome {
  result: Exclude<MonitorAuditResult, 'pending'>;
  error?: string | null;
  durationMs?: number | null;
}

export interface MonitorAuditRow {
  id: number;
  instanceUuid: string | null;
  instanceName: string | null;
  host: string | null;
  requestId: string | null;
  userId: string | null;
  projectId: string | null;
  kind: MonitorKind;
  command: string;
  arguments: Record<string, unknown> | null;
  allowed: boolean;
  result: MonitorAuditResult;
  error: string | null;
  durationMs: number | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface MonitorAuditRepository {
  /** Inserts a 'pending' row and returns its id once committed. */
  begin(entry: MonitorAuditInput): Promise<number>;
  /** Records how the command ended. */
  finish(id: number, outcome: MonitorAuditOutcome): Promise<void>;
  /** One complete row (a refused command, or a command already finished). */
  record(entry: MonitorAuditInput & MonitorAuditOutcome): Promise<number>;
  get(id: number): Promise<MonitorAuditRow | null>;
  /** Newest first. */
  listForInstance(instanceUuid: string, opts?: { limit?: number }): Promise<MonitorAuditRow[]>;
}

export function auditFromRow(row: DbRow): MonitorAuditRow {
  return {
    id: intCol(row, 'id'),
    instanceUuid: optStrCol(row, 'instance_uuid'),
    instanceName: optStrCol(row, 'instance_name'),
    host: optStrCol(row, 'host'),
    requestId: optStrCol(row, 'request_id'),
    userId: optStrCol(row, 'user_id'),
    projectId: optStrCol(row, 'project_id'),
    kind: strCol(row, 'kind') as MonitorKind,
    command: strCol(row, 'command'),
    arguments: jsonCol<Record<string, unknown>>(row, 'arguments'),
    allowed: boolCol(row, 'allowed'),
    result: strCol(row, 'result') as MonitorAuditResult,
    error: optStrCol(row, 'error'),
    durationMs: optIntCol(row, 'duration_ms'),
    createdAt: dateCol(row, 'created_at'),
    finishedAt: optDateCol(row, 'finished_at'),
  };
}

function entryColumns(entry: MonitorAuditInput): DbRow {
  const { arguments: args, ...rest } = entry;
  return { ...toColumns(rest), arguments: jsonParam(args) };
}

const TABLE = 'monitor_audit';

export class KnexMonitorAuditRepository implements MonitorAuditRepository {
  constructor(private readonly db: Database) {}

  async begin(entry: MonitorAuditInput): Promise<number> {
    const rows = (await this.db
      .knex(TABLE)
      .insert({ ...entryColumns(entry), result: 'pending' })
      .returning('id')) as DbRow[];
    return intCol(rows[0] as DbRow, 'id');
  }

  async finish(id: number, outcome: MonitorAuditOutcome): Promise<void> {
    const changed = await this.db
      .knex(TABLE)
      .where({ id })
      .update({
        result: outcome.result,
        error: outcome.error ?? null,
        duration_ms: outcome.durationMs === undefined || outcome.durationMs === null ? null : Math.round(outcome.durationMs),
        finished_at: this.db.knex.fn.now(),
      });
    if (changed === 0) throw new Error(`monitor audit row ${id} does not exist`);
  }

  async record(entry: MonitorAuditInput & MonitorAuditOutcome): Promise<number> {
    const { result, error, durationMs, ...input } = entry;
    const rows = (await this.db
      .knex(TABLE)
      .insert({
        ...entryColumns(input),
        result,
        error: error ?? null,
        duration_ms: durationMs === undefined || durationMs === null ? null : Math.round(durationMs),
        finished_at: this.db.knex.fn.now(),
      })
      .returning('id')) as DbRow[];
    return intCol(rows[0] as DbRow, 'id');
  }

  async get(id: number): Promise<MonitorAuditRow | null> {
    const row = (await this.db.knex(TABLE).where({ id }).first()) as DbRow | undefined;
    return row ? auditFromRow(row) : null;
  }

  async listForInstance(instanceUuid: string, opts: { limit?: number } = {}): Promise<MonitorAuditRow[]> {
    const q = this.db.knex(TABLE).where({ instance_uuid: instanceUuid }).orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
    if (opts.limit !== undefined) q.limit(opts.limit);
    return ((await q) as DbRow[]).map(auditFromRow);
  }
}
