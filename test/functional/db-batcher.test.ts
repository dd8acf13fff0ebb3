// Throughput of diagnostics snapshots written one INSERT each versus through the write-behind batcher,
// on PostgreSQL and PGlite. Prints the numbers; asserts only that every row arrived (no timing checks:
// the machine is shared).

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnexDiagnosticsRepository, type DiagnosticsSnapshotInput } from '../../src/db/diagnostics-repository.js';
import { createTestDatabase, type TestDatabase } from '../../src/db/test-database.js';

const ROWS = 1000;
const CONCURRENCY = 50;

function snapshot(uuid: string, n: number): DiagnosticsSnapshotInput {
  return { instanceUuid: uuid, host: 'cmp1', state: 'running', legacy: { cpu0_time: n, memory: 65536, vda_read: n * 512 } };
}

/** Runs `ROWS` writes with at most CONCURRENCY in flight, as many guests' pollers would. */
async function drive(write: (n: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < ROWS) await write(next++);
    }),
  );
  return performance.now() - started;
}

describe.each(['postgresql', 'pglite'] as const)('diagnostics write throughput on %s', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(kind);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('writes every snapshot, one by one and batched', async () => {
    const repo = new KnexDiagnosticsRepository(t.db, { maxDelayMs: 10, maxRows: 200 });
    const single = randomUUID();
    const batched = randomUUID();
    const singleMs = await drive((n) => repo.recordMany([snapshot(single, n)]));
    const batchedMs = await drive((n) => repo.record(snapshot(batched, n)));
    await repo.close();
    const count = async (uuid: string) =>
      Number(((await t.db.knex('instance_diagnostics').where({ instance_uuid: uuid }).count('* as c')) as Array<{ c: unknown }>)[0]?.c);
    expect(await count(single)).toBe(ROWS);
    expect(await count(batched)).toBe(ROWS);
    const rate = (ms: number) => Math.round((ROWS / ms) * 1000);
    console.log(
      `[db-batcher] ${kind}: ${ROWS} snapshots, ${CONCURRENCY} writers: one INSERT each ${Math.round(singleMs)} ms (${rate(singleMs)}/s); ` +
        `batched ${Math.round(batchedMs)} ms (${rate(batchedMs)}/s)`,
    );
  });
});
