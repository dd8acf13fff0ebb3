// Opens novamon's database: PostgreSQL through knex's `pg` client when [database] connection is a
// postgresql:// URL, or an embedded PGlite (PostgreSQL compiled to WASM) under <state_path>/db when it is
// empty. Both speak the same SQL, so repositories and migrations do not care which one they got.

import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import knexPkg, { type Knex } from 'knex';
import type { Logger } from '../logging.js';
import { DatabaseLocked } from './errors.js';

export type DatabaseKind = 'postgresql' | 'pglite';

/** The open database; repositories take it and use `knex`. */
export interface Database {
  readonly knex: Knex;
  readonly kind: DatabaseKind;
  /** The schema every table lives in (search_path); 'public' unless a test asked for its own. */
  readonly schema: string;
  /** Runs `select 1`; rejects when the database does not answer within timeoutMs. */
  ping(timeoutMs: number): Promise<void>;
  /**
   * Runs one statement ($1, $2, ... parameters) as a named prepared statement on a pooled PostgreSQL
   * connection: parsed and planned once per connection, and no query builder on the way. For the few
   * statements on a call's critical path. False (nothing run) on PGlite, where callers use knex.
   */
  runPrepared(name: string, text: string, values: readonly unknown[]): Promise<boolean>;
  /** Destroys the pool (PostgreSQL) or shuts PGlite down cleanly and releases its lock. Idempotent. */
  close(): Promise<void>;
}
export const Database = Symbol.for('novamon.Database');

export interface DatabaseOptions {
  /** '' = embedded PGlite under `<statePath>/db`; otherwise a postgresql:// (or postgres://) URL. */
  connection: string;
  statePath: string;
  /** PostgreSQL pool size (ignored by PGlite, which has exactly one connection). */
  poolSize: number;
  logger: Logger;
  /** Put every table in this schema (created if missing). Tests use one schema each. */
  schema?: string;
  /** Override the PGlite data directory (default `<statePath>/db`). */
  dataDir?: string;
  /** Seconds a PostgreSQL connection attempt, and a statement, may take. */
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_STATEMENT_TIMEOUT_MS = 60_000;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function createDatabase(opts: DatabaseOptions): Promise<Database> {
  const schema = opts.schema ?? 'public';
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name ${schema}: use lower-case letters, digits and _`);
  const logger = opts.logger.child({ component: 'db' });
  if (opts.connection === '') return openPglite(opts, schema, logger);
  if (!/^postgres(ql)?:\/\//.test(opts.connection)) {
    throw new Error('[database] connection must be empty (embedded PGlite) or a postgresql:// URL');
  }
  return openPostgres(opts, schema, logger);
}

async function openPostgres(opts: DatabaseOptions, schema: string, logger: Logger): Promise<Database> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const statementTimeoutMs = opts.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const knex = knexPkg({
    client: 'pg',
    connection: {
      connectionString: opts.connection,
      connectionTimeoutMillis: connectTimeoutMs,
      // Server-side limit, plus a client-side one a little later in case the server is unreachable.
      statement_timeout: statementTimeoutMs,
      query_timeout: statementTimeoutMs + 5_000,
      application_name: 'novamon',
    },
    searchPath: [schema],
    pool: { min: 0, max: opts.poolSize },
    log: knexLog(logger),
    acquireConnectionTimeout: connectTimeoutMs,
  });
  const db = new KnexDatabase(knex, 'postgresql', schema, logger, async () => knex.destroy());
  try {
    await db.ping(connectTimeoutMs);
    if (schema !== 'public') await knex.raw('create schema if not exists ??', [schema]);
  } catch (err) {
    await db.close();
    throw err;
  }
  logger.info({ kind: 'postgresql', schema, poolSize: opts.poolSize }, 'database opened');
  return db;
}

/*
 * PGlite is a single PostgreSQL backend running inside this process: one connection, and one process per
 * data directory. Two processes opening the same directory would each replay and write the WAL and
 * corrupt it, so a lock file beside the directory names the owning pid; a lock left by a dead process
 * (SIGKILL, crash) is taken over. novamon-compute and novamon-manage therefore cannot use the embedded
 * database at the same time: run `db sync` before starting the service, or use PostgreSQL.
 *
 * Durability: relaxedDurability must stay false (with it, PGlite acknowledges a query before its writes
 * reach the data directory). PGlite's Node filesystem writes straight through to the files, so every
 * committed transaction is in the kernel when the query returns and survives a SIGKILL of this process;
 * PostgreSQL's WAL replay on the next open makes the directory consistent again. PGlite runs its backend
 * with fsync off (its WASM filesystem has no fsync), so a power loss can still lose recent commits: a
 * deployment that must survive that uses PostgreSQL.
 */
async function openPglite(opts: DatabaseOptions, schema: string, logger: Logger): Promise<Database> {
  const dataDir = path.resolve(opts.dataDir ?? path.join(opts.statePath, 'db'));
  mkdirSync(path.dirname(dataDir), { recursive: true });
  const lockPath = `${dataDir}.lock`;
  acquireLock(lockPath, dataDir, logger);
  // Loaded only for the embedded database: a PostgreSQL deployment never pays for PGlite's modules.
  const [{ PGlite: PGliteClass }, { default: ClientPgLite }] = await Promise.all([import('@electric-sql/pglite'), import('knex-pglite')]);
  let pglite: PGlite | undefined;
  try {
    pglite = new PGliteClass({ dataDir, relaxedDurability: false });
    await pglite.waitReady;
  } catch (err) {
    releaseLock(lockPath);
    throw err;
  }
  const instance = pglite;
  const knex = knexPkg({
    client: ClientPgLite,
    // knex-pglite takes an existing PGlite from a connection function: that is how our options reach it.
    connection: () => ({ pglite: instance }) as object,
    searchPath: [schema],
    log: knexLog(logger),
  });
  const db = new KnexDatabase(knex, 'pglite', schema, logger, async () => {
    try {
      // knex-pglite closes PGlite when knex destroys its only connection; close() again if it never opened one.
      await knex.destroy();
      if (!instance.closed) await instance.close();
    } finally {
      releaseLock(lockPath);
    }
  });
  try {
    if (schema !== 'public') await instance.query(`create schema if not exists "${schema}"`);
    await db.ping(DEFAULT_CONNECT_TIMEOUT_MS);
  } catch (err) {
    await db.close();
    throw err;
  }
  logger.info({ kind: 'pglite', dataDir, schema }, 'database opened');
  return db;
}

/** knex prints its warnings with console.* unless given a logger: send them to ours. */
function knexLog(logger: Logger): Knex.Config['log'] {
  const text = (message: unknown) => (message instanceof Error ? message.message : String(message));
  return {
    warn: (message: unknown) => logger.warn(text(message)),
    error: (message: unknown) => logger.error(text(message)),
    deprecate: (method: string, alternative: string) => logger.warn(`knex: ${method} is deprecated, use ${alternative}`),
    debug: (message: unknown) => logger.debug({ message }, 'knex'),
  };
}

function acquireLock(lockPath: string, dataDir: string, logger: Logger): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(readFileSafe(lockPath), 10);
    if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) throw new DatabaseLocked(dataDir, owner);
    logger.warn({ lockPath, owner }, 'embedded database lock left by a process that is gone; taking it over');
    try {
      unlinkSync(lockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`could not take the embedded database lock ${lockPath}`);
}

function releaseLock(lockPath: string): void {
  try {
    if (Number.parseInt(readFileSafe(lockPath), 10) === process.pid) unlinkSync(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The part of a node-postgres client runPrepared uses. */
interface PreparedConnection {
  query(q: { name: string; text: string; values: unknown[] }): Promise<unknown>;
}

export class KnexDatabase implements Database {
  private closing: Promise<void> | undefined;

  constructor(
    readonly knex: Knex,
    readonly kind: DatabaseKind,
    readonly schema: string,
    private readonly logger: Logger,
    private readonly shutdown: () => Promise<void>,
  ) {}

  async ping(timeoutMs: number): Promise<void> {
    await withTimeout(this.knex.raw('select 1'), timeoutMs, `database did not answer within ${timeoutMs} ms`);
  }

  async runPrepared(name: string, text: string, values: readonly unknown[]): Promise<boolean> {
    if (this.kind !== 'postgresql') return false;
    // knex's own pool, so the pool size, acquire timeout and connection settings stay the same.
    const client = this.knex.client as { acquireConnection(): Promise<PreparedConnection>; releaseConnection(c: PreparedConnection): Promise<unknown> };
    const conn = await client.acquireConnection();
    try {
      await conn.query({ name, text, values: [...values] });
    } finally {
      await client.releaseConnection(conn);
    }
    return true;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown().then(() => this.logger.debug({ kind: this.kind }, 'database closed'));
    return this.closing;
  }
}

/** Rejects with `message` when `promise` has not settled within `ms`. */
export async function withTimeout<T>(promise: PromiseLike<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([Promise.resolve(promise), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
