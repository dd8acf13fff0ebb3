// Opening and closing the database: bad URLs and unreachable servers fail fast with a clear error,
// an embedded database is refused to a second opener while open, close() is idempotent.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseLocked } from '../../src/db/errors.js';
import { createDatabase, type Database } from '../../src/db/knex.js';
import { createTestDatabase, testPostgresUrl } from '../../src/db/test-database.js';
import { silentLogger } from '../../src/logging.js';

const logger = silentLogger();

describe('createDatabase', () => {
  const dirs: string[] = [];
  const open: Database[] = [];
  afterEach(async () => {
    for (const db of open.splice(0)) await db.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('refuses a connection string that is neither empty nor postgresql://', async () => {
    await expect(createDatabase({ connection: 'mysql://x', statePath: tmpdir(), poolSize: 1, logger })).rejects.toThrow(/postgresql:\/\//);
  });

  it('refuses a schema name that is not a plain identifier', async () => {
    await expect(createDatabase({ connection: testPostgresUrl(), statePath: tmpdir(), poolSize: 1, logger, schema: 'a"; drop' })).rejects.toThrow(/invalid schema/);
  });

  it('fails within the connect timeout when nothing listens', async () => {
    const started = Date.now();
    await expect(
      createDatabase({ connection: 'postgresql://postgres@127.0.0.1:1/test', statePath: tmpdir(), poolSize: 1, logger, connectTimeoutMs: 2000 }),
    ).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('PostgreSQL: ping answers, the schema is created, close twice is fine', async () => {
    const t = await createTestDatabase('postgresql', { migrate: false });
    try {
      await t.db.ping(5000);
      const rows = (await t.db.knex('information_schema.schemata').where({ schema_name: t.db.schema })) as unknown[];
      expect(rows).toHaveLength(1);
      expect(t.db.kind).toBe('postgresql');
    } finally {
      await t.cleanup();
    }
    await t.db.close();
  });

  // Not seeded from the template: this one runs PGlite's initdb through createDatabase, so it is slow.
  it('PGlite: initialises <statePath>/db and refuses a second opener while open', { timeout: 300_000 }, async () => {
    const statePath = mkdtempSync(path.join(tmpdir(), 'novamon-conn-'));
    dirs.push(statePath);
    const db = await createDatabase({ connection: '', statePath, poolSize: 5, logger });
    open.push(db);
    expect(db.kind).toBe('pglite');
    expect(existsSync(path.join(statePath, 'db', 'PG_VERSION'))).toBe(true);
    await db.ping(5000);
    await expect(createDatabase({ connection: '', statePath, poolSize: 1, logger })).rejects.toBeInstanceOf(DatabaseLocked);
    await db.close();
    await db.close();
    // Released on close: it opens again.
    const again = await createDatabase({ connection: '', statePath, poolSize: 1, logger });
    open.push(again);
    await again.ping(5000);
  });
});
