// instance_actions and instance_actions_events: one action per user request on an instance (stop, start,
// reboot...), and one event per manager method run for it, with its result and traceback.
// (instance_uuid, request_id) is unique: Nova reuses the action of a request, and the index lets
// `start` be a single INSERT ... ON CONFLICT.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('instance_actions', (t) => {
    t.increments('id');
    t.string('action', 255).notNullable();
    t.string('instance_uuid', 36).notNullable();
    t.string('request_id', 255).notNullable();
    t.string('user_id', 255);
    t.string('project_id', 255);
    t.timestamp('start_time', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finish_time', { useTz: true });
    t.string('message', 255);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true });
    t.unique(['instance_uuid', 'request_id'], { indexName: 'instance_actions_instance_uuid_request_id_key' });
    t.index(['request_id'], 'instance_actions_request_id_idx');
  });
  await knex.schema.createTable('instance_actions_events', (t) => {
    t.increments('id');
    t.string('event', 255).notNullable();
    t.integer('action_id').notNullable().references('id').inTable('instance_actions').onDelete('CASCADE');
    t.timestamp('start_time', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finish_time', { useTz: true });
    t.string('result', 255);
    t.text('traceback');
    t.string('host', 255);
    t.text('details');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true });
    t.index(['action_id'], 'instance_actions_events_action_id_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instance_actions_events');
  await knex.schema.dropTable('instance_actions');
}
