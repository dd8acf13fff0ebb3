// monitor_audit (novamon's own): every QMP/HMP command a user asked to send to a guest's monitor, who
// asked, whether policy allowed it and how it ended. A row is written ('pending') before the command
// runs and finished afterwards, so a command that crashed the service still left its trace.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('monitor_audit', (t) => {
    t.bigIncrements('id');
    t.string('instance_uuid', 36);
    t.string('instance_name', 255);
    t.string('host', 255);
    t.string('request_id', 255);
    t.string('user_id', 255);
    t.string('project_id', 255);
    t.string('kind', 8).notNullable();
    t.text('command').notNullable();
    t.jsonb('arguments');
    t.boolean('allowed').notNullable();
    t.string('result', 16).notNullable();
    t.text('error');
    t.integer('duration_ms');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.index(['instance_uuid', 'created_at'], 'monitor_audit_instance_uuid_created_at_idx');
    t.index(['request_id'], 'monitor_audit_request_id_idx');
  });
  await knex.raw(`alter table monitor_audit add constraint monitor_audit_kind_check check (kind in ('qmp', 'hmp'))`);
  await knex.raw(
    `alter table monitor_audit add constraint monitor_audit_result_check check (result in ('pending', 'ok', 'error', 'refused'))`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('monitor_audit');
}
