// The server list as Nova's DB API builds it: every filter, the sort (created_at desc, id desc) and
// limit/marker paging in one SQL query, so a list reads one page, not the whole project. The name
// filter is a PostgreSQL regular expression (`~`, as Nova passes it on PostgreSQL), evaluated by the
// database under a statement timeout: a hostile pattern costs at most that, and never our event loop.

import type { Knex } from 'knex';
import { type Database } from './knex.js';
import { instanceFromRow, type InstanceRow } from './instance-repository.js';
import { type DbRow } from './rows.js';

export interface InstanceSearch {
  projectId?: string;
  userId?: string;
  /** Regular expression matched (unanchored, `~`) against display_name, or name when it has none. */
  nameRegex?: string;
  vmStates?: readonly string[];
  host?: string;
  /** coalesce(updated_at, created_at) on or after / on or before. */
  changesSince?: Date;
  changesBefore?: Date;
  /** uuid of the row the page starts after; it must match the same filters. */
  marker?: string;
  limit?: number;
  /** The whole search is cancelled by the database after this many ms; default 5 s. */
  timeoutMs?: number;
}

/** The marker uuid is not among the rows the filters select (Nova: MarkerNotFound, 400). */
export class MarkerNotFound extends Error {
  override readonly name = 'MarkerNotFound';
  constructor(readonly marker: string) {
    super(`marker [${marker}] not found`);
  }
}

/** The database gave up on the search at the statement timeout (a pathological name pattern). */
export class SearchTimeout extends Error {
  override readonly name = 'SearchTimeout';
  constructor(
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`the server list query was cancelled after ${timeoutMs} ms`, options);
  }
}

export const DEFAULT_SEARCH_TIMEOUT_MS = 5000;
const INVALID_REGULAR_EXPRESSION = '2201B';
const QUERY_CANCELED = '57014';
const NAME_COLUMN = 'coalesce(display_name, name)';

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function applyFilters(q: Knex.QueryBuilder, s: InstanceSearch, literalName: boolean): void {
  q.where({ deleted: 0 });
  if (s.projectId !== undefined) q.andWhere({ project_id: s.projectId });
  if (s.userId !== undefined) q.andWhere({ user_id: s.userId });
  if (s.host !== undefined) q.andWhere({ host: s.host });
  if (s.vmStates !== undefined) q.whereIn('vm_state', [...s.vmStates]);
  if (s.changesSince) q.andWhereRaw('coalesce(updated_at, created_at) >= ?', [s.changesSince]);
  if (s.changesBefore) q.andWhereRaw('coalesce(updated_at, created_at) <= ?', [s.changesBefore]);
  if (s.nameRegex !== undefined) {
    // A pattern PostgreSQL cannot compile matches literally, as the API always did.
    if (literalName) q.andWhereRaw(`strpos(${NAME_COLUMN}, ?) > 0`, [s.nameRegex]);
    else q.andWhereRaw(`${NAME_COLUMN} ~ ?`, [s.nameRegex]);
  }
}

async function page(trx: Knex.Transaction, s: InstanceSearch, literalName: boolean): Promise<InstanceRow[]> {
  const q = trx('instances').select('*');
  applyFilters(q, s, literalName);
  if (s.marker !== undefined) {
    const mq = trx('instances').select('id').where({ uuid: s.marker });
    applyFilters(mq, s, literalName);
    if (!(await mq.first())) throw new MarkerNotFound(s.marker);
    // Compared in SQL: created_at keeps microseconds a JavaScript Date would lose.
    q.andWhereRaw('(created_at, id) < (select created_at, id from instances where uuid = ?)', [s.marker]);
  }
  q.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]);
  if (s.limit !== undefined) q.limit(s.limit);
  return ((await q) as DbRow[]).map(instanceFromRow);
}

export async function searchInstances(db: Database, s: InstanceSearch): Promise<InstanceRow[]> {
  const timeoutMs = Math.max(1, Math.floor(s.timeoutMs ?? DEFAULT_SEARCH_TIMEOUT_MS));
  const run = (literalName: boolean) =>
    db.knex.transaction(async (trx) => {
      await trx.raw(`select set_config('statement_timeout', ?, true)`, [`${timeoutMs}ms`]);
      return page(trx, s, literalName);
    });
  try {
    return await run(false);
  } catch (err) {
    if (sqlState(err) === INVALID_REGULAR_EXPRESSION) return run(true);
    if (sqlState(err) === QUERY_CANCELED) throw new SearchTimeout(timeoutMs, { cause: err });
    throw err;
  }
}
