// The ordered list of schema migrations. Imported explicitly (not discovered on disk) so the same list
// works under tsx from migrations/*.ts and compiled under dist/migrations/*.js. Append only: a migration
// that has shipped is never edited or renumbered.

import type { Knex } from 'knex';
import * as m001 from './001_instances.js';
import * as m002 from './002_instance_faults.js';
import * as m003 from './003_instance_actions.js';
import * as m004 from './004_console_auth_tokens.js';
import * as m005 from './005_instance_diagnostics.js';
import * as m006 from './006_monitor_audit.js';

export interface SchemaMigration {
  /** `NNN_name`: the number is the schema version this migration brings the database to. */
  readonly name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly SchemaMigration[] = [
  { name: '001_instances', ...m001 },
  { name: '002_instance_faults', ...m002 },
  { name: '003_instance_actions', ...m003 },
  { name: '004_console_auth_tokens', ...m004 },
  { name: '005_instance_diagnostics', ...m005 },
  { name: '006_monitor_audit', ...m006 },
];
