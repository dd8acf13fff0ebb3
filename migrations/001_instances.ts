// The instances table: Nova's columns a compute service reads and writes, plus novamon's `name` (the
// hypervisor's name for the guest, from instance_name_template).
//
// `id` is Nova's instance id and the primary key, with no sequence behind it: novamon never invents one.
// An instance arriving over RPC brings Nova's id; a guest discovered on the hypervisor gets the id its name
// was formatted from (InstanceNameTemplate.parseId), so both routes give one guest the same row.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instances', (t) => {
    t.integer('id').primary();
    t.string('uuid', 36).notNullable().unique();
    t.string('name', 255).notNullable().unique();
    t.string('host', 255);
    t.string('node', 255);
    t.string('hostname', 255);
    t.string('display_name', 255);
    t.string('vm_state', 255);
    t.string('task_state', 255);
    t.integer('power_state');
    t.timestamp('launched_at', { useTz: true });
    t.timestamp('terminated_at', { useTz: true });
    t.string('project_id', 255);
    t.string('user_id', 255);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true });
    t.timestamp('deleted_at', { useTz: true });
    t.integer('deleted').notNullable().defaultTo(0);
    t.index(['host', 'deleted'], 'instances_host_deleted_idx');
    t.index(['project_id', 'deleted'], 'instances_project_id_deleted_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instances');
}
