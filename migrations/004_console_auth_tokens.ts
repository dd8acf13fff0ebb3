// console_auth_tokens: one row per console connection handed out; only the sha256 of the token is
// stored, so a copy of the table does not open anyone's console. `expires` is epoch seconds, as in Nova.

import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('console_auth_tokens', (t) => {
    t.increments('id');
    t.string('token_hash', 64).notNullable().unique();
    t.string('console_type', 255).notNullable();
    t.string('host', 255).notNullable();
    t.integer('port').notNullable();
    t.string('internal_access_path', 255);
    t.string('instance_uuid', 36).notNullable();
    t.string('access_url_base', 255);
    t.bigInteger('expires').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['instance_uuid'], 'console_auth_tokens_instance_uuid_idx');
    t.index(['expires'], 'console_auth_tokens_expires_idx');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('console_auth_tokens');
}
