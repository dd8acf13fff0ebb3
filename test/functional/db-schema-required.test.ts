// The services on a PostgreSQL database nobody ran `novamon-manage db sync` on: each exits 1 with one
// line naming the command to run, never a raw "relation ... does not exist"; after db sync it gets past it.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createScratchDatabase } from '../fixtures/scratch.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'novamon-schema-'));
let db: Awaited<ReturnType<typeof createScratchDatabase>>;
let conf: string;

function run(bin: string, args: string[] = [], timeout = 60_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', bin), '--config-file', conf, ...args], { timeout }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

beforeAll(async () => {
  db = await createScratchDatabase('novamon_schema');
  conf = path.join(dir, 'novamon.conf');
  writeFileSync(conf, `[DEFAULT]\nstate_path = ${dir}\ncompute_driver = fake\ntransport_url = rabbit://guest:guest@127.0.0.1:1/\n\n[api]\nauth_strategy = noauth2\n\n[database]\nconnection = ${db.url}\n`);
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

it('novamon-compute and novamon-api refuse an empty schema, naming novamon-manage db sync', async () => {
  for (const bin of ['novamon-compute.js', 'novamon-api.js']) {
    const r = await run(bin);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/SchemaNotCurrent: the database has no novamon schema: run `novamon-manage --config-file <the same file> db sync` first/);
    expect(r.stderr).not.toMatch(/does not exist/);
  }
  const sync = await run('novamon-manage.js', ['db', 'sync']);
  expect(sync.code, sync.stderr).toBe(0);
  // With the schema in place the service gets past the check (and on to RabbitMQ, which is not there).
  const after = await run('novamon-api.js', [], 8000);
  expect(after.stderr).not.toMatch(/SchemaNotCurrent/);
}, 180_000);
