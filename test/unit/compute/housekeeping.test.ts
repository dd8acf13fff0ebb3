// The housekeeping's schedule: rounds on the interval, never two at once, and a shutdown that does not wait
// long on a round stuck behind a store that never answers (a conductor gone quiet).

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Housekeeping } from '../../../src/compute/housekeeping.js';
import { silentLogger } from '../../../src/logging.js';

function stores(cleanExpired: () => Promise<number | null>) {
  let pruned = 0;
  return {
    tokens: { authorize: () => Promise.resolve('t'), cleanExpired },
    diagnostics: { record: () => Promise.resolve(), deleteOlderThan: () => Promise.resolve(++pruned) },
    pruned: () => pruned,
  };
}

describe('Housekeeping', () => {
  it('runs a round every interval', async () => {
    let cleaned = 0;
    const s = stores(async () => ++cleaned);
    const hk = new Housekeeping(s, { host: 'h', intervalMs: 20, diagnosticsRetentionMs: 3_600_000 }, silentLogger()).start();
    await expect.poll(() => cleaned, { timeout: 2000 }).toBeGreaterThanOrEqual(3);
    await hk.close();
    const after = cleaned;
    await sleep(100);
    expect(cleaned).toBe(after);
    expect(s.pruned()).toBe(after);
  });

  it('never starts a round while one is under way, and closes without waiting for it past the bound', async () => {
    let calls = 0;
    const s = stores(() => {
      calls++;
      return new Promise(() => undefined); // never answers
    });
    const hk = new Housekeeping(s, { host: 'h', intervalMs: 20, diagnosticsRetentionMs: 0 }, silentLogger()).start();
    await expect.poll(() => calls, { timeout: 2000 }).toBe(1);
    await sleep(150);
    expect(calls).toBe(1);
    const outcome = await Promise.race([hk.close(100).then(() => 'closed'), sleep(3000).then(() => 'still waiting')]);
    expect(outcome).toBe('closed');
  });

  it('runs no rounds when the interval is 0', async () => {
    let calls = 0;
    const hk = new Housekeeping(stores(async () => ++calls), { host: 'h', intervalMs: 0, diagnosticsRetentionMs: 1 }, silentLogger()).start();
    await sleep(100);
    expect(calls).toBe(0);
    await hk.close();
  });
});
