// Throw-away databases for tests and benchmarks: a fresh PostgreSQL schema (novamon_test_<random>) or a
// PGlite directory under a new temp dir, migrated to the newest schema, and a cleanup that drops it.
// Not used by the services; it lives here so every test suite can share it.

import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
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
    await seedPgliteDataDir(path.join(statePath, 'db'));
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

/**
 * Fills `dataDir` with a copy of an empty, cleanly closed PGlite cluster. PGlite's initdb takes 10-30 s
 * on a busy two-core machine; a copy takes under a second. The template is built once per PGlite version
 * in the temp directory (by whichever test process gets there first) and reused by later ones.
 */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  cpSync(await pgliteTemplateDir(), dataDir, { recursive: true });
}

/** Builds (or finds) the template; call it from a beforeAll with a generous timeout to pay initdb there. */
export function pgliteTemplateDir(): Promise<string> {
  templateDir ??= buildPgliteTemplate();
  return templateDir;
}

let templateDir: Promise<string> | undefined;

async function buildPgliteTemplate(): Promise<string> {
  const dir = path.join(tmpdir(), `novamon-pglite-template-${pgliteVersion()}`);
  if (existsSync(path.join(dir, 'PG_VERSION'))) return dir;
  const staging = mkdtempSync(path.join(tmpdir(), 'novamon-pglite-staging-'));
  try {
    const pg = new PGlite({ dataDir: staging });
    await pg.waitReady;
    await pg.close();
    // Publish atomically; if another process published first, its copy is as good as ours.
    renameSync(staging, dir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(path.join(dir, 'PG_VERSION'))) throw err;
  }
  return dir;
}

function pgliteVersion(): string {
  // The package does not export its package.json: find it beside the resolved entry point.
  let dir = path.dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite'));
  for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    } catch {
      // not this directory
    }
  }
  return 'unknown';
}
