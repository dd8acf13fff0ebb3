import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { DedupeCache } from '../../../src/rpc/dedupe.js';
import { TaskScheduler } from '../../../src/rpc/scheduler.js';

const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('DedupeCache', () => {
  it('knows ids in flight and done, and wakes waiting duplicates with the reply', () => {
    const c = new DedupeCache();
    expect(c.begin('a')).toBe(true);
    expect(c.begin('a')).toBe(false);
    const got: Array<string | null> = [];
    const e = c.get('a');
    if (e?.state !== 'inflight') throw new Error('expected inflight');
    e.waiters.push((r) => got.push(r));
    c.finish('a', 'R');
    expect(got).toEqual(['R']);
    expect(c.get('a')).toEqual({ state: 'done', reply: 'R' });
  });

  it('is bounded by ids (never evicting work in flight) and by reply bytes', () => {
    const c = new DedupeCache({ maxIds: 3, maxReplyBytes: 10, maxOneReplyBytes: 8 });
    c.begin('busy');
    for (const id of ['a', 'b', 'c', 'd']) {
      c.begin(id);
      c.finish(id, null);
    }
    expect(c.size).toBe(3);
    expect(c.get('busy')?.state).toBe('inflight');
    expect(c.get('a')).toBeUndefined();
    c.begin('r1');
    c.finish('r1', '123456');
    c.begin('r2');
    c.finish('r2', '123456');
    expect(c.get('d')).toBeUndefined(); // oldest finished id evicted by the id count
    expect(c.get('r1')).toEqual({ state: 'done', reply: null }); // its reply fell out of the 10-char budget
    expect(c.get('r2')).toEqual({ state: 'done', reply: '123456' });
    c.begin('big');
    c.finish('big', 'x'.repeat(9));
    expect(c.get('big')).toEqual({ state: 'done', reply: null });
  });

  it('evicts the oldest cached replies beyond the byte budget but keeps their ids', () => {
    const c = new DedupeCache({ maxIds: 100, maxReplyBytes: 10 });
    for (const id of ['a', 'b', 'c']) {
      c.begin(id);
      c.finish(id, '1234');
    }
    expect(c.get('a')).toEqual({ state: 'done', reply: null });
    expect(c.get('c')).toEqual({ state: 'done', reply: '1234' });
  });

  it('counts replies in UTF-8 bytes and gives them back unchanged', () => {
    const c = new DedupeCache({ maxIds: 100, maxReplyBytes: 12, maxOneReplyBytes: 8 });
    c.begin('accents');
    c.finish('accents', '"été"'); // 5 characters, 7 bytes
    expect(c.replyBytes).toBe(7);
    expect(c.get('accents')).toEqual({ state: 'done', reply: '"été"' });
    c.begin('emoji');
    c.finish('emoji', '🖥🖥'); // 4 UTF-16 units, 8 bytes: the first reply no longer fits the budget
    expect(c.replyBytes).toBe(8);
    expect(c.get('accents')).toEqual({ state: 'done', reply: null });
    expect(c.get('emoji')).toEqual({ state: 'done', reply: '🖥🖥' });
    c.begin('wide');
    c.finish('wide', 'ééééé'); // 5 characters but 10 bytes: over the single-reply limit
    expect(c.get('wide')).toEqual({ state: 'done', reply: null });
    expect(c.replyBytes).toBe(8);
  });

  it('keeps a reply built by concatenation in no more heap than its bytes', () => {
    // 2,000 replies of ~3 KB, each assembled from hundreds of small pieces as the reply encoder does.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const c = new DedupeCache({ maxIds: 100_000, maxReplyBytes: 64 * 1024 * 1024 });
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 2000; i++) {
      let reply = '';
      for (let k = 0; k < 300; k++) reply += `"k${k}": ${i * k}, `;
      c.begin(`id${i}`);
      c.finish(`id${i}`, reply);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    const first = c.get('id0');
    expect(first?.state === 'done' && first.reply?.startsWith('"k0": 0, "k1": 0, ')).toBe(true);
    expect(c.replyBytes).toBeGreaterThan(2000 * 2500);
    // Kept as the string pieces, the same replies hold about 30 MB of heap.
    expect(grown).toBeLessThan(2 * 1024 * 1024);
  });
});

describe('TaskScheduler', () => {
  it('runs tasks with the same key in order and different keys concurrently', async () => {
    const s = new TaskScheduler(10);
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await tick(ms);
      log.push(`end ${name}`);
    };
    await Promise.all([s.run('k', task('k1', 20)), s.run('k', task('k2', 1)), s.run('j', task('j1', 1)), s.run(null, task('n', 1))]);
    expect(log.indexOf('end k1')).toBeLessThan(log.indexOf('start k2'));
    expect(log.indexOf('start j1')).toBeLessThan(log.indexOf('end k1'));
  });

  it('never runs more than the limit at once and survives throwing tasks', async () => {
    const s = new TaskScheduler(2);
    let running = 0;
    let peak = 0;
    const jobs = Array.from({ length: 10 }, (_, i) =>
      s.run(i % 3 === 0 ? null : `k${i % 2}`, async () => {
        running++;
        peak = Math.max(peak, running);
        await tick(2);
        running--;
        if (i === 4) throw new Error('boom');
      }),
    );
    await Promise.all(jobs);
    expect(peak).toBe(2);
    expect(s.active).toBe(0);
  });
});
