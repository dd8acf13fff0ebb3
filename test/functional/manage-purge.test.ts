// `novamon-manage db purge` on PostgreSQL: the housekeeping novamon-compute runs every
// instance_delete_interval, on demand. Expired console tokens go, live ones stay; diagnostics snapshots
// older than [database] diagnostics_retention_hours (or --before) go, this host's only unless --all-hosts.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KnexConsoleAuthTokenRepository } from '../../src/db/console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from '../../src/db/diagnostics-repository.js';
import { createDatabase, type Database } from '../../src/db/knex.js';
import { silentLogger } from '../../src/logging.js';
import { createPgDatabase } from '../fixtures/compute-service.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HOST = 'purge-host';
const HOUR = 3_600_000;
let scratch: Awaited<ReturnType<typeof createPgDatabase>>;
let dir: string;
let configPath: string;
let db: Database;

function manage(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin/novamon-manage.js'), '--config-file', configPath, ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  scratch = await createPgDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'novamon-purge-'));
  configPath = path.join(dir, 'novamon.conf');
  writeFileSync(configPath, `[DEFAULT]\nhost = ${HOST}\nstate_path = ${dir}\n\n[database]\nconnection = ${scratch.url}\ndiagnostics_retention_hours = 24\n`);
  const sync = await manage(['db', 'sync']);
  expect(sync.code, sync.stderr).toBe(0);
  db = await createDatabase({ connection: scratch.url, statePath: dir, poolSize: 1, logger: silentLogger() });
}, 60_000);

afterAll(async () => {
  await db?.close();
  await scratch?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function tokenUuids(): Promise<string[]> {
  const rows = (await db.knex('console_auth_tokens').select('instance_uuid').orderBy('instance_uuid')) as Array<{ instance_uuid: string }>;
  return rows.map((r) => r.instance_uuid);
}

async function snapshotStates(): Promise<string[]> {
  const rows = (await db.knex('instance_diagnostics').select('state').orderBy('state')) as Array<{ state: string }>;
  return rows.map((r) => r.state);
}

it('drops expired tokens and this host\'s snapshots past the retention, then what --all-hosts --before names', async () => {
  const tokens = new KnexConsoleAuthTokenRepository(db);
  const token = (instanceUuid: string) => ({ token: randomUUID(), consoleType: 'novnc', host: '127.0.0.1', port: 5900, instanceUuid, ttlSeconds: 600 });
  const live = `00000000-0000-4000-8000-${'1'.repeat(12)}`;
  await tokens.createMany([token(`00000000-0000-4000-8000-${'a'.repeat(12)}`), token(`00000000-0000-4000-8000-${'b'.repeat(12)}`)], { now: new Date(Date.now() - 2 * HOUR) });
  await tokens.createMany([token(live)]);

  const snapshots = new KnexDiagnosticsRepository(db);
  const at = (hoursAgo: number) => new Date(Date.now() - hoursAgo * HOUR);
  const uuid = randomUUID();
  await snapshots.recordMany([
    { instanceUuid: uuid, host: HOST, capturedAt: at(48), state: 'old-here-1' },
    { instanceUuid: uuid, host: HOST, capturedAt: at(25), state: 'old-here-2' },
    { instanceUuid: uuid, host: HOST, capturedAt: at(1), state: 'recent-here' },
    { instanceUuid: uuid, host: 'other-host', capturedAt: at(48), state: 'old-elsewhere' },
  ]);
  await snapshots.close();

  const first = await manage(['db', 'purge']);
  expect(first.code, first.stderr).toBe(0);
  expect(JSON.parse(first.stdout)).toMatchObject({ expiredTokens: 2, diagnosticsDropped: 2, hosts: HOST });
  const cutoff = Date.parse((JSON.parse(first.stdout) as { diagnosticsBefore: string }).diagnosticsBefore);
  expect(Math.abs(cutoff - (Date.now() - 24 * HOUR))).toBeLessThan(5 * 60_000);
  expect(await tokenUuids()).toEqual([live]);
  expect(await snapshotStates()).toEqual(['old-elsewhere', 'recent-here']);

  // Idempotent: nothing more is due.
  const again = await manage(['db', 'purge']);
  expect(JSON.parse(again.stdout)).toMatchObject({ expiredTokens: 0, diagnosticsDropped: 0 });

  const everywhere = await manage(['db', 'purge', '--all-hosts', '--before', new Date(Date.now() - 2 * HOUR).toISOString()]);
  expect(everywhere.code, everywhere.stderr).toBe(0);
  expect(JSON.parse(everywhere.stdout)).toMatchObject({ expiredTokens: 0, diagnosticsDropped: 1, hosts: 'all' });
  expect(await snapshotStates()).toEqual(['recent-here']);
  expect(await tokenUuids()).toEqual([live]);
});

it('refuses a --before that is not a date and deletes nothing', async () => {
  const before = await snapshotStates();
  const bad = await manage(['db', 'purge', '--before', 'last tuesday']);
  expect(bad.code).not.toBe(0);
  expect(bad.stderr).toMatch(/--before last tuesday: expected an ISO 8601 date/);
  expect(await snapshotStates()).toEqual(before);
});
