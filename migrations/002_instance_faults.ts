// instance_faults: what went wrong in an operation on an instance (Nova's code, message, traceback).
// No foreign key to instances: a fault must be recordable even for an instance novamon has not stored yet.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instance_faults', (t) => {
    t.increments('id');
    t.string('instance_uuid', 36).notNullable();
    t.integer('code').notNullable();
    t.string('message', 255);
    t.text('details');
    t.string('host', 255);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['instance_uuid', 'created_at'], 'instance_faults_instance_uuid_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instance_faults');
}
