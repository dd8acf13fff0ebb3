// The server list query on real databases: filters, Nova's sort and limit/marker paging done by SQL,
// and the name pattern evaluated by PostgreSQL's regex engine under a statement timeout, so a
// backtracking pattern never runs in our event loop (`GET /servers?name=(a|a)*z` used to take 25 s there).

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnexInstanceRepository } from '../../src/db/instance-repository.js';
import { MarkerNotFound, SearchTimeout } from '../../src/db/instance-search.js';
import { createTestDatabase, type TestDatabase } from '../../src/db/test-database.js';

const LONG_A = 'a'.repeat(28);
const VERY_LONG_A = 'a'.repeat(255);

describe('instance search on postgresql', () => {
  let t: TestDatabase;
  let repo: KnexInstanceRepository;
  const project = `p-${randomUUID()}`;
  const uuids: string[] = [];
  const base = 0x7a000 + Math.floor(Math.random() * 0x1000) * 16;

  beforeAll(async () => {
    t = await createTestDatabase('postgresql');
    repo = new KnexInstanceRepository(t.db);
    const names = ['web-1', 'web-2', 'db-1', LONG_A, VERY_LONG_A, 'web-3', 'a(b'];
    for (const [i, displayName] of names.entries()) {
      const id = base + i;
      const uuid = randomUUID();
      uuids.push(uuid);
      await repo.upsertDiscovered({ uuid, id, name: `instance-${id.toString(16).padStart(8, '0')}`, host: i % 2 ? 'h2' : 'h1', node: 'n', powerState: 1, vmState: i === 2 ? 'stopped' : 'active', projectId: project, userId: i === 5 ? 'u2' : 'u1', displayName });
    }
    // Two rows with the same created_at: the id breaks the tie, as in Nova's sort.
    await t.db.knex('instances').whereIn('uuid', uuids).update({ created_at: t.db.knex.raw(`timestamp '2026-01-01 00:00:00.123456' + (id % 3) * interval '1 second'`) });
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const displayNames = (rows: Array<{ displayName: string | null }>) => rows.map((r) => r.displayName);

  it('evaluates a backtracking pattern in the database, fast, without stalling the event loop', async () => {
    let maxLag = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 5);
      last = now;
    }, 5);
    const t0 = performance.now();
    const rows = await repo.search({ projectId: project, nameRegex: '(a|a)*z' });
    const ms = performance.now() - t0;
    clearInterval(tick);
    expect(rows).toEqual([]);
    expect(ms).toBeLessThan(2000);
    expect(maxLag).toBeLessThan(500);
    expect(displayNames(await repo.search({ projectId: project, nameRegex: '^(a|a)*$' })).sort()).toEqual([LONG_A, VERY_LONG_A]);
  });

  it('cancels a pattern too costly even for PostgreSQL at the statement timeout', async () => {
    const err = await repo.search({ projectId: project, nameRegex: '(((a{1,10}){1,10}){1,10}){1,10}\\3b', timeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SearchTimeout);
    // The connection is usable afterwards (the timeout was local to its transaction).
    expect(await repo.search({ projectId: project, nameRegex: '^web-1$' })).toHaveLength(1);
  });

  it('keeps Nova semantics: unanchored regex on the display name, literal when it does not compile, every filter', async () => {
    expect(displayNames(await repo.search({ projectId: project, nameRegex: 'eb-' })).sort()).toEqual(['web-1', 'web-2', 'web-3']);
    expect(displayNames(await repo.search({ projectId: project, nameRegex: 'a(b' }))).toEqual(['a(b']);
    expect(displayNames(await repo.search({ projectId: project, nameRegex: 'web', host: 'h2' })).sort()).toEqual(['web-2', 'web-3']);
    expect(displayNames(await repo.search({ projectId: project, vmStates: ['stopped'] }))).toEqual(['db-1']);
    expect(displayNames(await repo.search({ projectId: project, userId: 'u2' }))).toEqual(['web-3']);
    expect(await repo.search({ projectId: project, vmStates: [] })).toEqual([]);
    expect(await repo.search({ projectId: `p-${randomUUID()}` })).toEqual([]);
  });

  it('sorts created_at desc, id desc and pages with limit and marker in SQL, microseconds intact', async () => {
    const all = await repo.search({ projectId: project });
    expect(all).toHaveLength(7);
    for (let i = 1; i < all.length; i++) {
      const [a, b] = [all[i - 1]!, all[i]!];
      expect(a.createdAt.getTime() > b.createdAt.getTime() || (a.createdAt.getTime() === b.createdAt.getTime() && a.id > b.id)).toBe(true);
    }
    const pages: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await repo.search({ projectId: project, limit: 3, ...(marker ? { marker } : {}) });
      pages.push(...page.map((r) => r.uuid));
      if (page.length < 3) break;
      marker = page[2]!.uuid;
    }
    expect(pages).toEqual(all.map((r) => r.uuid));
    expect(await repo.search({ projectId: project, limit: 0 })).toEqual([]);
    const err = await repo.search({ projectId: project, marker: randomUUID() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MarkerNotFound);
    // A marker outside the filtered rows is not found either.
    const stopped = all.find((r) => r.vmState === 'stopped')!;
    await expect(repo.search({ projectId: project, vmStates: ['active'], marker: stopped.uuid })).rejects.toBeInstanceOf(MarkerNotFound);
  });
});
