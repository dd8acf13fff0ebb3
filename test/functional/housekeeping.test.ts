// novamon-compute's housekeeping round on a real database (PostgreSQL and the embedded PGlite): expired
// console tokens go, live ones stay; this host's diagnostics snapshots past their retention go, recent
// ones and other hosts' stay; one part failing does not stop the other.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Housekeeping } from '../../src/compute/housekeeping.js';
import { KnexConsoleAuthTokenRepository } from '../../src/db/console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from '../../src/db/diagnostics-repository.js';
import { createTestDatabase, type TestDatabase } from '../../src/db/test-database.js';
import { silentLogger } from '../../src/logging.js';
import { createComputeStores } from '../../src/main/compute-stores.js';

const HOUR = 3_600_000;

describe.each(['postgresql', 'pglite'] as const)('housekeeping on %s', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(kind);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  async function seed(host: string, other: string, now: number) {
    const uuid = randomUUID();
    const diagnostics = new KnexDiagnosticsRepository(t.db);
    const at = (hoursAgo: number, h = host) => ({ instanceUuid: uuid, host: h, state: 'running', capturedAt: new Date(now - hoursAgo * HOUR), legacy: { hoursAgo } });
    await diagnostics.recordMany([at(30), at(26), at(25), at(1), at(0.1), at(30, other), at(26, other)]);
    const tokens = new KnexConsoleAuthTokenRepository(t.db);
    const token = { consoleType: 'novnc', host: '127.0.0.1', port: 5900, instanceUuid: uuid, accessUrlBase: 'http://127.0.0.1:6080/vnc_auto.html', ttlSeconds: 600 };
    await tokens.create({ ...token, token: 'expired-' + uuid }, { now: new Date(now - HOUR) });
    await tokens.create({ ...token, token: 'live-' + uuid }, { now: new Date(now) });
    const left = async () => ({
      snapshots: ((await t.db.knex('instance_diagnostics').where({ instance_uuid: uuid }).select('host', 'legacy')) as Array<{ host: string; legacy: unknown }>)
        .map((r) => `${r.host}:${(typeof r.legacy === 'string' ? JSON.parse(r.legacy) : r.legacy).hoursAgo}`)
        .sort(),
      tokens: Number(((await t.db.knex('console_auth_tokens').where({ instance_uuid: uuid }).count({ n: '*' })) as Array<{ n: unknown }>)[0]?.n),
    });
    return { left };
  }

  it('drops expired tokens and this host\'s snapshots past retention, and keeps the rest', async () => {
    const now = Date.now();
    const { left } = await seed('hk-a', 'hk-b', now);
    const stores = createComputeStores(t.db);
    const round = await new Housekeeping(stores, { host: 'hk-a', intervalMs: 0, diagnosticsRetentionMs: 24 * HOUR }, silentLogger()).runOnce(new Date(now));
    expect(round.diagnosticsDropped).toBe(3);
    expect(round.expiredTokens).toBeGreaterThanOrEqual(1);
    expect(await left()).toEqual({ snapshots: ['hk-a:0.1', 'hk-a:1', 'hk-b:26', 'hk-b:30'], tokens: 1 });
    await stores.close();
  });

  it('keeps every snapshot when retention is 0, and prunes even when the token cleanup fails', async () => {
    const now = Date.now();
    const { left } = await seed('hk-c', 'hk-d', now);
    const stores = createComputeStores(t.db);
    const keepAll = await new Housekeeping(stores, { host: 'hk-c', intervalMs: 0, diagnosticsRetentionMs: 0 }, silentLogger()).runOnce(new Date(now));
    expect(keepAll.diagnosticsDropped).toBe(0);
    expect(await left()).toMatchObject({ snapshots: expect.arrayContaining(['hk-c:30', 'hk-c:26', 'hk-c:25']), tokens: 1 });
    expect((await left()).snapshots).toHaveLength(7);
    // The conductor (or the database) refusing the token cleanup: the retention still runs.
    const failingTokens = { ...stores.tokens, cleanExpired: () => Promise.reject(new Error('conductor away')) };
    const round = await new Housekeeping({ tokens: failingTokens, diagnostics: stores.diagnostics }, { host: 'hk-c', intervalMs: 0, diagnosticsRetentionMs: 24 * HOUR }, silentLogger()).runOnce(new Date(now));
    expect(round).toEqual({ expiredTokens: null, diagnosticsDropped: 3 });
    expect(await left()).toEqual({ snapshots: ['hk-c:0.1', 'hk-c:1', 'hk-d:26', 'hk-d:30'], tokens: 1 });
    await stores.close();
  });

  it('deletes in batches of the given size until none is left', async () => {
    const now = Date.now();
    const { left } = await seed('hk-e', 'hk-f', now);
    const repo = new KnexDiagnosticsRepository(t.db);
    expect(await repo.deleteOlderThan(new Date(now - 24 * HOUR), { host: 'hk-e', batchSize: 1 })).toBe(3);
    expect((await left()).snapshots).toEqual(['hk-e:0.1', 'hk-e:1', 'hk-f:26', 'hk-f:30']);
  });
});
