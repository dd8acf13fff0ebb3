// Migrations go up to the newest version and all the way down again, on PostgreSQL and on PGlite,
// and `db version` reports what is applied.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../../migrations/index.js';
import { schemaVersion, syncSchema } from '../../src/db/migrate.js';
import { createTestDatabase, pgliteTemplateDir, type TestDatabase } from '../../src/db/test-database.js';

const TABLES = [
  'instances',
  'instance_faults',
  'instance_actions',
  'instance_actions_events',
  'console_auth_tokens',
  'instance_diagnostics',
  'monitor_audit',
];

async function tablesIn(t: TestDatabase): Promise<string[]> {
  const rows = (await t.db.knex('information_schema.tables').where({ table_schema: t.db.schema }).select('table_name')) as Array<{ table_name: string }>;
  return rows.map((r) => r.table_name).filter((n) => !n.startsWith('novamon_migrations')).sort();
}

describe.each(['postgresql', 'pglite'] as const)('migrations on %s', (kind) => {
  let t: TestDatabase | undefined;
  // PGlite's initdb is slow on a busy machine: pay it once here rather than inside the first test.
  beforeAll(async () => {
    if (kind === 'pglite') await pgliteTemplateDir();
  }, 300_000);
  afterEach(async () => {
    await t?.cleanup();
    t = undefined;
  });

  it('an empty database is at version 0 with every migration pending', async () => {
    t = await createTestDatabase(kind, { migrate: false });
    const v = await schemaVersion(t.db);
    expect(v.version).toBe(0);
    expect(v.latest).toBe(migrations.length);
    expect(v.pending).toEqual(migrations.map((m) => m.name));
    expect(await tablesIn(t)).toEqual([]);
  });

  it('goes up to the newest version, down to 0, and up again', async () => {
    t = await createTestDatabase(kind, { migrate: false });
    const up = await syncSchema(t.db);
    expect(up).toMatchObject({ from: 0, to: migrations.length });
    expect(await tablesIn(t)).toEqual([...TABLES].sort());
    expect((await schemaVersion(t.db)).pending).toEqual([]);

    // A second sync is a no-op.
    expect((await syncSchema(t.db)).ran).toEqual([]);

    const down = await syncSchema(t.db, { version: 0 });
    expect(down.to).toBe(0);
    expect(down.ran).toEqual(migrations.map((m) => `-${m.name}`).reverse());
    expect(await tablesIn(t)).toEqual([]);

    await syncSchema(t.db);
    expect(await tablesIn(t)).toEqual([...TABLES].sort());
  });

  it('goes to a given version in either direction', async () => {
    t = await createTestDatabase(kind, { migrate: false });
    await syncSchema(t.db, { version: 3 });
    expect((await schemaVersion(t.db)).version).toBe(3);
    expect(await tablesIn(t)).toEqual(['instance_actions', 'instance_actions_events', 'instance_faults', 'instances']);
    await syncSchema(t.db, { version: 1 });
    expect(await tablesIn(t)).toEqual(['instances']);
    await expect(syncSchema(t.db, { version: 99 })).rejects.toThrow(/not between 0 and/);
  });
});
