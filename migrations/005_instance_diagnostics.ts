// instance_diagnostics (novamon's own): snapshots of what the monitor reported for an instance, the
// Diagnostics object and the legacy dict, kept so the API and operators can see recent history.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instance_diagnostics', (t) => {
    t.bigIncrements('id');
    t.string('instance_uuid', 36).notNullable();
    t.string('host', 255);
    t.timestamp('captured_at', { useTz: true }).notNullable();
    t.string('state', 32);
    t.jsonb('diagnostics');
    t.jsonb('legacy');
    t.index(['instance_uuid', 'captured_at'], 'instance_diagnostics_instance_uuid_captured_at_idx');
    t.index(['captured_at'], 'instance_diagnostics_captured_at_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instance_diagnostics');
}
