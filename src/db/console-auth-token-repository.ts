// console_auth_tokens: the tokens get_vnc_console/get_serial_console hand out and the console proxy
// checks. Only sha256(token) is stored; a token is valid until `expires` (epoch seconds).

import { type Database } from './knex.js';
import { affectedRows, dateCol, intCol, optStrCol, sha256Hex, strCol, type DbRow } from './rows.js';

export interface ConsoleAuthTokenInput {
  /** The token in clear; it is hashed here and never stored. */
  token: string;
  consoleType: string;
  host: string;
  port: number;
  internalAccessPath?: string | null;
  instanceUuid: string;
  accessUrlBase?: string | null;
  ttlSeconds: number;
}

export interface ConsoleAuthTokenRow {
  id: number;
  tokenHash: string;
  consoleType: string;
  host: string;
  port: number;
  internalAccessPath: string | null;
  instanceUuid: string;
  accessUrlBase: string | null;
  /** Epoch seconds. */
  expires: number;
  createdAt: Date;
}

export interface ConsoleAuthTokenRepository {
  create(input: ConsoleAuthTokenInput, opts?: { now?: Date }): Promise<ConsoleAuthTokenRow>;
  /** The token's row while it has not expired, else null (unknown and expired look the same). */
  validate(token: string, opts?: { now?: Date }): Promise<ConsoleAuthTokenRow | null>;
  /** Removes expired tokens; returns how many. */
  deleteExpired(opts?: { now?: Date }): Promise<number>;
  /** Removes every token of an instance (Nova does this when the instance goes away). */
  deleteForInstance(instanceUuid: string): Promise<number>;
}

export function epochSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/**
 * The URL a user opens, as Nova's ConsoleAuthToken.access_url builds it: noVNC (>= 1.1) takes the token
 * inside its `path` parameter (`?path=%3Ftoken%3D<token>`); other consoles take `?token=<token>`.
 */
export function consoleAccessUrl(accessUrlBase: string, consoleType: string, token: string): string {
  if (consoleType === 'novnc') return `${accessUrlBase}?path=${encodeURIComponent(`?token=${token}`)}`;
  return `${accessUrlBase}?token=${encodeURIComponent(token)}`;
}

export function consoleTokenFromRow(row: DbRow): ConsoleAuthTokenRow {
  return {
    id: intCol(row, 'id'),
    tokenHash: strCol(row, 'token_hash'),
    consoleType: strCol(row, 'console_type'),
    host: strCol(row, 'host'),
    port: intCol(row, 'port'),
    internalAccessPath: optStrCol(row, 'internal_access_path'),
    instanceUuid: strCol(row, 'instance_uuid'),
    accessUrlBase: optStrCol(row, 'access_url_base'),
    expires: intCol(row, 'expires'),
    createdAt: dateCol(row, 'created_at'),
  };
}

const TABLE = 'console_auth_tokens';

const TOKEN_COLUMNS = ['token_hash', 'console_type', 'host', 'port', 'internal_access_path', 'instance_uuid', 'access_url_base', 'expires'] as const;
/**
 * One INSERT for a batch of tokens, committed asynchronously: set_config(..., true) turns synchronous_commit
 * off for this statement's own transaction, so the commit does not wait for the WAL flush (one round trip,
 * no BEGIN/SET LOCAL/COMMIT). The rows are visible to every other session, the console proxy's included,
 * as soon as the INSERT returns; what a PostgreSQL crash can lose is the last fraction of a second of tokens
 * (up to 3 x wal_writer_delay), and a lost token only means asking for the console URL again. Tokens are
 * short-lived by design; nothing else is written this way.
 */
const INSERT_TOKENS =
  "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) " +
  `INSERT INTO ${TABLE} (${TOKEN_COLUMNS.join(', ')}) ` +
  'SELECT t.* FROM async, unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::integer[], $5::varchar[], $6::varchar[], $7::varchar[], $8::bigint[]) AS t';

/** Throws for a token the table must not hold (empty, or a ttl that is not a positive integer). */
export function checkTokenInput(input: ConsoleAuthTokenInput): void {
  if (input.token.length === 0) throw new Error('console token must not be empty');
  if (!Number.isInteger(input.ttlSeconds) || input.ttlSeconds <= 0) throw new Error(`console token ttl ${input.ttlSeconds} must be a positive integer`);
}

function tokenRow(input: ConsoleAuthTokenInput, now: Date): DbRow {
  checkTokenInput(input);
  return {
    token_hash: sha256Hex(input.token),
    console_type: input.consoleType,
    host: input.host,
    port: input.port,
    internal_access_path: input.internalAccessPath ?? null,
    instance_uuid: input.instanceUuid,
    access_url_base: input.accessUrlBase ?? null,
    expires: epochSeconds(now) + input.ttlSeconds,
  };
}

export class KnexConsoleAuthTokenRepository implements ConsoleAuthTokenRepository {
  constructor(private readonly db: Database) {}

  async create(input: ConsoleAuthTokenInput, opts: { now?: Date } = {}): Promise<ConsoleAuthTokenRow> {
    const rows = (await this.db.knex(TABLE).insert(tokenRow(input, opts.now ?? new Date())).returning('*')) as DbRow[];
    return consoleTokenFromRow(rows[0] as DbRow);
  }

  /**
   * Several tokens in one INSERT (one round trip, one commit): the batched path of compute's token store.
   * On PostgreSQL one prepared statement takes any number of rows as arrays, so it is planned once.
   */
  async createMany(inputs: readonly ConsoleAuthTokenInput[], opts: { now?: Date } = {}): Promise<void> {
    if (inputs.length === 0) return;
    const now = opts.now ?? new Date();
    const rows = inputs.map((i) => tokenRow(i, now));
    const columns = TOKEN_COLUMNS.map((c) => rows.map((r) => r[c] ?? null));
    if (await this.db.runPrepared('novamon_console_tokens_insert_async', INSERT_TOKENS, columns)) return;
    await this.db.knex(TABLE).insert(rows);
  }

  async validate(token: string, opts: { now?: Date } = {}): Promise<ConsoleAuthTokenRow | null> {
    const row = (await this.db
      .knex(TABLE)
      .where({ token_hash: sha256Hex(token) })
      .andWhere('expires', '>', epochSeconds(opts.now ?? new Date()))
      .first()) as DbRow | undefined;
    return row ? consoleTokenFromRow(row) : null;
  }

  async deleteExpired(opts: { now?: Date } = {}): Promise<number> {
    return affectedRows(await this.db.knex(TABLE).where('expires', '<=', epochSeconds(opts.now ?? new Date())).delete());
  }

  async deleteForInstance(instanceUuid: string): Promise<number> {
    return affectedRows(await this.db.knex(TABLE).where({ instance_uuid: instanceUuid }).delete());
  }
}
