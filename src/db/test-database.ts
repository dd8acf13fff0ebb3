// Throw-away databases for tests and benchmarks: a fresh PostgreSQL schema (novamon_test_<random>) or a
// PGlite directory under a new temp dir, migrated to the newest schema, and a cleanup that drops it.
// Not used by the services; it lives here so every test suite can share it.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger, type Logger } from '../logging.js';
import { createDatabase, type Database, type DatabaseKind } from './knex.js';
import { syncSchema } from './migrate.js';

/** PostgreSQL used by tests: $NOVAMON_TEST_DATABASE_URL, else the local server (trust auth). */
export function testPostgresUrl(): string {
  return process.env['NOVAMON_TEST_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/test';
}

export interface TestDatabase {
  db: Database;
  /** PGlite only: the temp directory holding `db/` (the state path). */
  statePath?: string;
  /** Closes the database and drops what was created for it. */
  cleanup(): Promise<void>;
}

export async function createTestDatabase(
  kind: DatabaseKind,
  opts: { migrate?: boolean; logger?: Logger } = {},
): Promise<TestDatabase> {
  const logger = opts.logger ?? silentLogger();
  if (kind === 'pglite') {
    const statePath = mkdtempSync(path.join(tmpdir(), 'novamon-test-db-'));
    const db = await createDatabase({ connection: '', statePath, poolSize: 1, logger });
    if (opts.migrate !== false) await syncSchema(db);
    return {
      db,
      statePath,
      cleanup: async () => {
        await db.close();
        rmSync(statePath, { recursive: true, force: true });
      },
    };
  }
  const schema = `novamon_test_${randomBytes(6).toString('hex')}`;
  const db = await createDatabase({ connection: testPostgresUrl(), statePath: tmpdir(), poolSize: 4, logger, schema });
  if (opts.migrate !== false) await syncSchema(db);
  return {
    db,
    cleanup: async () => {
      try {
        await db.knex.raw('drop schema if exists ?? cascade', [schema]);
      } finally {
        await db.close();
      }
    },
  };
}
