// instance_faults: records why an operation on an instance failed (Nova's fault: code, message,
// traceback as details, host), newest first when listed, as `nova instance-action`/server show read them.

import { type Database } from './knex.js';
import { dateCol, intCol, optStrCol, strCol, truncate, type DbRow } from './rows.js';

export interface InstanceFaultInput {
  instanceUuid: string;
  /** The exception's HTTP code, 500 when it has none. */
  code: number;
  message: string;
  /** Traceback or other detail text. */
  details?: string | null;
  host?: string | null;
}

export interface InstanceFaultRow {
  id: number;
  instanceUuid: string;
  code: number;
  message: string | null;
  details: string | null;
  host: string | null;
  createdAt: Date;
}

export interface InstanceFaultRepository {
  record(fault: InstanceFaultInput): Promise<InstanceFaultRow>;
  /** Newest first. */
  listForInstance(instanceUuid: string, opts?: { limit?: number }): Promise<InstanceFaultRow[]>;
}

export function faultFromRow(row: DbRow): InstanceFaultRow {
  return {
    id: intCol(row, 'id'),
    instanceUuid: strCol(row, 'instance_uuid'),
    code: intCol(row, 'code'),
    message: optStrCol(row, 'message'),
    details: optStrCol(row, 'details'),
    host: optStrCol(row, 'host'),
    createdAt: dateCol(row, 'created_at'),
  };
}

export class KnexInstanceFaultRepository implements InstanceFaultRepository {
  constructor(private readonly db: Database) {}

  async record(fault: InstanceFaultInput): Promise<InstanceFaultRow> {
    const rows = (await this.db
      .knex('instance_faults')
      .insert({
        instance_uuid: fault.instanceUuid,
        code: fault.code,
        // Nova keeps the first 255 characters of the message; the full text belongs in details.
        message: truncate(fault.message),
        details: fault.details ?? null,
        host: fault.host ?? null,
      })
      .returning('*')) as DbRow[];
    return faultFromRow(rows[0] as DbRow);
  }

  async listForInstance(instanceUuid: string, opts: { limit?: number } = {}): Promise<InstanceFaultRow[]> {
    const q = this.db.knex('instance_faults').where({ instance_uuid: instanceUuid }).orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
    if (opts.limit !== undefined) q.limit(opts.limit);
    return ((await q) as DbRow[]).map(faultFromRow);
  }
}
