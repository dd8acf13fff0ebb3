// Promise 3: PostgreSQL goes away under load. The private server is stopped for ~10 s (30 s with
// RESILIENCE_PG_OUTAGE_S=30) while novamon-compute serves diagnostics, pause/unpause and monitor commands;
// reads keep being answered, the writes wait in the fsynced spool under state_path and reach the database
// in order when it returns; a SIGKILL with writes spooled loses nothing (replayed at the next start); a
// full spool refuses new work with a failure, and a monitor command whose audit row cannot be made
// durable never reaches the monitor. (PGlite's own SIGKILL safety: test/functional/db-pglite-crash.test.ts.)

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createComputeStores } from '../../src/main/compute-stores.js';
import type { Database } from '../../src/db/knex.js';
import { SpoolFull } from '../../src/db/spool.js';
import { silentLogger } from '../../src/logging.js';
import { attachPrivatePostgres, type PrivatePostgres } from '../fixtures/private-postgres.js';
import { attachPrivateRabbit } from '../fixtures/private-rabbit.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, openTestDb, PacedLoad, round, uniqueName, waitFor, writeComputeConfig, writeReport } from './harness.js';

const pgInfo = inject('privatePostgres');
const rabbitInfo = inject('privateRabbit');
const OUTAGE_S = Number(process.env['RESILIENCE_PG_OUTAGE_S'] ?? 10);

describe.runIf(pgInfo && rabbitInfo)('resilience: PostgreSQL unavailable under load', () => {
  const host = uniqueName('res_pg_host');
  const exchange = uniqueName('res_pg');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-pg-'));
  const instancesPath = path.join(dir, 'instances');
  const id = 0x5100 + Math.floor(Math.random() * 0xff);
  let pg: PrivatePostgres;
  let dbUrl: string;
  let configFile: string;
  let guest: FixtureGuest;
  /** Paused and unpaused by the writers; `guest` stays running for the reads. */
  let guest2: FixtureGuest;
  let instance2: Record<string, unknown>;
  let compute: ComputeProcess | null = null;
  let caller: Caller;
  let db: Database;
  let instance: Record<string, unknown>;

  beforeAll(async () => {
    pg = attachPrivatePostgres(pgInfo!);
    dbUrl = await createTestDatabase(pg.url, uniqueName('res_pg'));
    guest = await startFixtureGuest({ instancesPath, name: `instance-${id.toString(16).padStart(8, '0')}` });
    guest2 = await startFixtureGuest({ instancesPath, name: `instance-${(id + 0x100).toString(16).padStart(8, '0')}` });
    const rabbit = attachPrivateRabbit(rabbitInfo!);
    configFile = writeComputeConfig(dir, { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 15_000);
    db = await openTestDb(dbUrl);
    instance = instanceArg(guest, id, host);
    instance2 = instanceArg(guest2, id + 0x100, host);
  });

  afterAll(async () => {
    await pg?.startServer().catch(() => undefined);
    await compute?.stop();
    await caller?.close();
    await db?.close();
    await killAllFixtureGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  const rows = async (table: string, where: Record<string, unknown> = { instance_uuid: guest.uuid }) => (await db.knex(table).where(where).orderBy('id')) as Array<Record<string, unknown>>;

  it(`answers reads and spools writes through a ${OUTAGE_S} s outage, then replays them in order`, async () => {
    // First calls: rows written, instances cached.
    await caller.call('get_diagnostics', { instance }, { timeoutMs: 60_000 });
    await caller.call('get_diagnostics', { instance: instance2 }, { timeoutMs: 60_000 });
    const load = new PacedLoad(() => caller.call('get_diagnostics', { instance }), 20).start();
    // Writers: a pause/unpause pair and an audited monitor command, one after the other, throughout.
    const ops: Array<{ kind: 'pause' | 'unpause' | 'monitor'; requestId: string; ok: boolean; during: boolean }> = [];
    let outage = false;
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const kind = (['pause', 'unpause', 'monitor'] as const)[i % 3] as 'pause' | 'unpause' | 'monitor';
        const requestId = `req-${uniqueName('w')}`;
        const during = outage;
        const p =
          kind === 'monitor'
            ? caller.call('monitor_command', { instance: instance2, command: '{"execute":"query-status"}' }, { admin: true, requestId })
            : caller.call(`${kind}_instance`, { instance: instance2 }, { requestId });
        const ok = await p.then(() => true, () => false);
        ops.push({ kind, requestId, ok, during });
        await sleep(150);
      }
    })();

    await sleep(2000);
    const tStop = performance.now();
    await pg.stopServer();
    outage = true;
    await sleep(OUTAGE_S * 1000);
    outage = false;
    await pg.startServer();
    const tBack = performance.now();
    await sleep(1000);
    writing = false;
    await writer;
    await load.stop();

    // Everything that was answered must reach the database, in the order it happened.
    const okOps = ops.filter((o) => o.ok);
    const audited = okOps.filter((o) => o.kind === 'monitor');
    const acted = okOps.filter((o) => o.kind !== 'monitor');
    const drained = await waitFor('spooled writes to reach PostgreSQL', async () => {
      const audit = await rows('monitor_audit', { instance_uuid: guest2.uuid });
      const actions = await rows('instance_actions', { instance_uuid: guest2.uuid });
      return audit.filter((r) => r['result'] === 'ok').length >= audited.length && actions.length >= acted.length ? { audit, actions } : null;
    }, 60_000, 200);
    const tReplayed = performance.now();
    const summary = load.summary();
    const duringOutage = ops.filter((o) => o.during);

    // Reads the monitor answers kept being answered.
    expect(load.samples.filter((x) => x.outcome !== 'ok').slice(0, 3)).toEqual([]);
    // Writes issued during the outage were accepted (spooled), none lost.
    expect(duringOutage.length).toBeGreaterThan(3);
    expect(duringOutage.every((o) => o.ok)).toBe(true);
    expect(drained.audit.map((r) => r['request_id'])).toEqual(audited.map((o) => o.requestId));
    expect(drained.actions.map((r) => r['request_id'])).toEqual(acted.map((o) => o.requestId));
    for (const a of drained.actions) {
      const events = await rows('instance_actions_events', { action_id: a['id'] });
      expect(events.map((e) => e['result'])).toEqual(['Success']);
      expect(a['finish_time']).not.toBeNull();
    }
    const last = acted[acted.length - 1];
    const [inst] = await rows('instances', { uuid: guest2.uuid });
    expect(inst?.['vm_state']).toBe(last?.kind === 'pause' ? 'paused' : 'active');
    const diagnostics = await rows('instance_diagnostics', { instance_uuid: guest.uuid });
    expect(diagnostics.length).toBeGreaterThanOrEqual(summary.answered);
    const spooled = compute!.count(/database unavailable; spooling the write/);
    expect(spooled).toBeGreaterThan(0);
    expect(compute!.alive).toBe(true);

    writeReport('3-postgres-outage', {
      promise: '3. PostgreSQL unavailable under load',
      figures: [
        ['outage length (s)', round((tBack - tStop) / 1000), `${OUTAGE_S} s requested`],
        ['diagnostics reads answered / failed / timed out', `${summary.answered} / ${summary.failed} / ${summary.timedOut}`, 'all answered'],
        ['read p50 / p99 (ms)', `${summary.p50Ms} / ${summary.p99Ms}`, ''],
        ['writes accepted during the outage (actions + audited monitor commands)', duringOutage.length, 'none refused while the spool has room'],
        ['rows replayed into PostgreSQL, in order', `${drained.actions.length} actions, ${drained.audit.length} audit rows, ${diagnostics.length} diagnostics`, 'every acknowledged write'],
        ['seconds from the server\'s return to the spool replayed', round((tReplayed - tBack) / 1000), ''],
      ],
    });
  });

  it('replays spooled writes after a SIGKILL of the service', async () => {
    await pg.stopServer();
    const requestIds: string[] = [];
    for (const kind of ['pause', 'unpause', 'pause', 'unpause']) {
      const requestId = `req-${uniqueName('k')}`;
      await caller.call(`${kind}_instance`, { instance }, { requestId, timeoutMs: 30_000 });
      requestIds.push(requestId);
    }
    compute!.kill('SIGKILL');
    await compute!.exited;
    await pg.startServer();
    compute = await ComputeProcess.start(configFile);
    await compute.waitForLog(/spooled database writes found from an earlier run/, 10_000);
    const actions = await waitFor('the killed service\'s spooled actions', async () => {
      const got = (await rows('instance_actions')).filter((r) => requestIds.includes(r['request_id'] as string));
      return got.length === requestIds.length ? got : null;
    }, 30_000, 200);
    expect(actions.map((r) => r['request_id'])).toEqual(requestIds);
    const [inst] = await rows('instances', { uuid: guest.uuid });
    expect(inst?.['vm_state']).toBe('active');
    expect(await caller.call('get_diagnostics', { instance })).toBeTruthy();
  });

  it('refuses work with a failure, never silently, when the spool is full; an audit row that cannot be made durable refuses the command', async () => {
    const spoolDir = path.join(dir, 'small-spool');
    const storeDb = await openTestDb(dbUrl);
    const stores = createComputeStores(storeDb, silentLogger(), { spoolDir, spoolMaxBytes: 4096 });
    await pg.stopServer();
    try {
      let accepted = 0;
      let refusal: unknown = null;
      for (let i = 0; i < 200 && refusal === null; i++) {
        await stores.faults
          .record({ instanceUuid: guest.uuid as string, code: 500, message: `fault ${i}`, details: 'x'.repeat(100), host })
          .then(() => accepted++, (err: unknown) => (refusal = err));
      }
      expect(accepted).toBeGreaterThan(5);
      expect(refusal).toBeInstanceOf(SpoolFull);
      // What the manager awaits before a monitor command runs: it throws, so the command is refused.
      await expect(
        stores.audit.begin({ instanceUuid: guest.uuid as string, instanceName: guest.name, host, requestId: null, userId: null, projectId: null, kind: 'qmp', command: 'query-status', arguments: null, allowed: true }),
      ).rejects.toBeInstanceOf(SpoolFull);
      expect(stores.spoolStats()?.pending).toBe(accepted);
      await pg.startServer();
      const drained = await waitFor('the small spool to drain', () => (stores.spoolStats()?.pending === 0 ? true : null), 30_000, 100);
      expect(drained).toBe(true);
      const faults = await rows('instance_faults');
      expect(faults.filter((f) => /^fault \d+$/.test(String(f['message']))).map((f) => f['message'])).toEqual(Array.from({ length: accepted }, (_, i) => `fault ${i}`));
    } finally {
      await pg.startServer().catch(() => undefined);
      await stores.close();
      await storeDb.close();
    }
  });
});
