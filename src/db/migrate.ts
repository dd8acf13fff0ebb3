// Schema migrations for `novamon-manage db sync` and `db version`: runs the explicit list in
// migrations/index.ts through a knex migration source, forwards to the newest version or to a given one
// (down included), and reports which migrations are applied.

import type { Knex } from 'knex';
import { migrations as allMigrations, type SchemaMigration } from '../../migrations/index.js';
import type { Database } from './knex.js';

export const MIGRATIONS_TABLE = 'novamon_migrations';

/** knex migration source over an in-memory list (no directory scan, so tsx and dist/ behave alike). */
export class ListMigrationSource implements Knex.MigrationSource<SchemaMigration> {
  constructor(private readonly list: readonly SchemaMigration[]) {}

  getMigrations(): Promise<SchemaMigration[]> {
    return Promise.resolve([...this.list]);
  }

  getMigrationName(migration: SchemaMigration): string {
    return migration.name;
  }

  getMigration(migration: SchemaMigration): Promise<Knex.Migration> {
    return Promise.resolve({ up: migration.up, down: migration.down });
  }
}

export interface SchemaVersion {
  /** Number of the newest applied migration (0 = empty database). */
  version: number;
  /** Number of the newest migration this build knows. */
  latest: number;
  applied: string[];
  pending: string[];
}

/** The schema version a migration brings the database to: its NNN prefix. */
export function migrationVersion(name: string): number {
  const m = /^(\d+)_/.exec(name);
  if (!m?.[1]) throw new Error(`migration ${name} has no NNN_ prefix`);
  return Number.parseInt(m[1], 10);
}

function migratorConfig(list: readonly SchemaMigration[]): Knex.MigratorConfig {
  return { migrationSource: new ListMigrationSource(list), tableName: MIGRATIONS_TABLE };
}

export async function schemaVersion(db: Database, list: readonly SchemaMigration[] = allMigrations): Promise<SchemaVersion> {
  const [completed] = (await db.knex.migrate.list(migratorConfig(list))) as [Array<{ name: string } | string>, unknown[]];
  const applied = completed.map((c) => (typeof c === 'string' ? c : c.name));
  const appliedSet = new Set(applied);
  const pending = list.map((m) => m.name).filter((name) => !appliedSet.has(name));
  const version = applied.reduce((max, name) => Math.max(max, migrationVersion(name)), 0);
  const latest = list.reduce((max, m) => Math.max(max, migrationVersion(m.name)), 0);
  return { version, latest, applied, pending };
}

export interface SyncResult {
  from: number;
  to: number;
  /** Migrations run, in order; names of `down`s are prefixed with '-'. */
  ran: string[];
}

/**
 * Brings the schema to `version` (default: the newest). Going down runs each newer migration's `down`
 * in reverse order. Safe to run concurrently on PostgreSQL (knex holds a lock row while migrating).
 */
export async function syncSchema(
  db: Database,
  opts: { version?: number } = {},
  list: readonly SchemaMigration[] = allMigrations,
): Promise<SyncResult> {
  const config = migratorConfig(list);
  const before = await schemaVersion(db, list);
  const target = opts.version ?? before.latest;
  if (!Number.isInteger(target) || target < 0 || target > before.latest) {
    throw new Error(`schema version ${target} is not between 0 and ${before.latest}`);
  }
  const ran: string[] = [];
  if (target >= before.version) {
    for (const m of list) {
      if (migrationVersion(m.name) > target || before.applied.includes(m.name)) continue;
      await db.knex.migrate.up({ ...config, name: m.name });
      ran.push(m.name);
    }
  } else {
    const toUndo = [...before.applied].filter((name) => migrationVersion(name) > target).sort().reverse();
    for (const name of toUndo) {
      await db.knex.migrate.down({ ...config, name });
      ran.push(`-${name}`);
    }
  }
  const after = await schemaVersion(db, list);
  return { from: before.version, to: after.version, ran };
}
