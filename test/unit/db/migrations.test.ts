// The migration list itself: numbered without gaps, each with up and down, and the version helper.

import { describe, expect, it } from 'vitest';
import { migrations } from '../../../migrations/index.js';
import { ListMigrationSource, migrationVersion } from '../../../src/db/migrate.js';

describe('migration list', () => {
  it('is numbered 1..N in order with up and down', () => {
    expect(migrations.map((m) => migrationVersion(m.name))).toEqual(migrations.map((_, i) => i + 1));
    for (const m of migrations) {
      expect(m.name).toMatch(/^\d{3}_[a-z_]+$/);
      expect(typeof m.up).toBe('function');
      expect(typeof m.down).toBe('function');
    }
  });

  it('is served unchanged by the knex migration source', async () => {
    const source = new ListMigrationSource(migrations);
    const listed = await source.getMigrations();
    expect(listed.map((m) => source.getMigrationName(m))).toEqual(migrations.map((m) => m.name));
  });

  it('refuses a name without a number', () => {
    expect(() => migrationVersion('instances')).toThrow(/NNN_/);
  });
});
