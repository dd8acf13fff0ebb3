// The write-behind batcher: rows are grouped by size and delay, each add() resolves after its batch was
// written, a failed write rejects exactly its batch, flush/close drain what is queued.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { BatcherClosed, WriteBehindBatcher } from '../../../src/db/batcher.js';

function recorder(opts: { failOn?: number } = {}) {
  const batches: number[][] = [];
  const write = async (rows: number[]) => {
    await new Promise((r) => setTimeout(r, 5));
    if (opts.failOn !== undefined && rows.includes(opts.failOn)) throw new Error(`cannot write ${opts.failOn}`);
    batches.push(rows);
  };
  return { batches, write };
}

describe('WriteBehindBatcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes a full batch at once and the rest after the delay', async () => {
    const r = recorder();
    const b = new WriteBehindBatcher({ maxDelayMs: 30, maxRows: 3, write: r.write });
    const done = [1, 2, 3, 4].map((n) => b.add(n));
    await Promise.all(done.slice(0, 3));
    expect(r.batches).toEqual([[1, 2, 3]]);
    await done[3];
    expect(r.batches).toEqual([[1, 2, 3], [4]]);
    expect(b.stats).toEqual({ batches: 2, rows: 4 });
  });

  it('does not resolve an add before its row is written', async () => {
    vi.useFakeTimers();
    const r = recorder();
    const b = new WriteBehindBatcher({ maxDelayMs: 1000, maxRows: 100, write: r.write });
    let resolved = false;
    const p = b.add(1).then(() => (resolved = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(resolved).toBe(false);
    await vi.advanceTimersByTimeAsync(10);
    await p;
    expect(r.batches).toEqual([[1]]);
  });

  it('keeps order and never writes more than maxRows at a time', async () => {
    const r = recorder();
    const b = new WriteBehindBatcher({ maxDelayMs: 5, maxRows: 7, write: r.write });
    await Promise.all(Array.from({ length: 50 }, (_, n) => b.add(n)));
    expect(r.batches.flat()).toEqual(Array.from({ length: 50 }, (_, n) => n));
    expect(Math.max(...r.batches.map((x) => x.length))).toBeLessThanOrEqual(7);
  });

  it('a failed write rejects its own batch only', async () => {
    const r = recorder({ failOn: 2 });
    const b = new WriteBehindBatcher({ maxDelayMs: 5, maxRows: 2, write: r.write });
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => b.add(n)));
    expect(results.map((x) => x.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    expect(r.batches).toEqual([[3, 4]]);
  });

  it('flush writes now; close drains and refuses new rows', async () => {
    const r = recorder();
    const b = new WriteBehindBatcher({ maxDelayMs: 60_000, maxRows: 100, write: r.write });
    const p = b.add(1);
    await b.flush();
    await p;
    expect(r.batches).toEqual([[1]]);
    const q = b.add(2);
    await b.close();
    await q;
    expect(r.batches).toEqual([[1], [2]]);
    await expect(b.add(3)).rejects.toBeInstanceOf(BatcherClosed);
    expect(b.pending).toBe(0);
  });

  it('with maxDelayMs 0, groups the rows of one turn and those added while a batch is written', async () => {
    const r = recorder();
    const b = new WriteBehindBatcher({ maxDelayMs: 0, maxRows: 100, write: r.write });
    const first = [1, 2, 3].map((n) => b.add(n));
    // The first batch is being written (the recorder takes 5 ms): these wait and go together next.
    await new Promise((res) => setImmediate(res));
    const second = [4, 5].map((n) => b.add(n));
    await Promise.all([...first, ...second]);
    expect(r.batches).toEqual([[1, 2, 3], [4, 5]]);
  });

  it('with maxDelayMs 0, a lone row does not wait for a timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const batches: number[][] = [];
    const b = new WriteBehindBatcher({ maxDelayMs: 0, maxRows: 100, write: async (rows: number[]) => void batches.push(rows) });
    // Fake timers never fire here: only an immediate can write the row.
    await b.add(7);
    expect(batches).toEqual([[7]]);
  });
});
