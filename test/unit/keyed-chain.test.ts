import { describe, expect, it } from 'vitest';
import { KeyedChain } from '../../src/keyed-chain.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('KeyedChain', () => {
  it('runs one key\'s work in order, one at a time, past failures, and other keys alongside', async () => {
    const chain = new KeyedChain();
    const log: string[] = [];
    const step = (name: string, ms: number, fail = false) => async () => {
      log.push(`${name}>`);
      await tick(ms);
      log.push(`<${name}`);
      if (fail) throw new Error(name);
      return name;
    };
    const a1 = chain.run('a', step('a1', 20, true));
    const a2 = chain.run('a', step('a2', 1));
    const b1 = chain.run('b', step('b1', 5));
    await expect(a1).rejects.toThrow('a1');
    expect(await a2).toBe('a2');
    expect(await b1).toBe('b1');
    expect(log.indexOf('<a1')).toBeLessThan(log.indexOf('a2>'));
    expect(log.indexOf('b1>')).toBeLessThan(log.indexOf('<a1'));
    await chain.settled();
  });

  it('settled() waits for what was queued, and nothing is kept afterwards', async () => {
    const chain = new KeyedChain();
    let done = false;
    void chain.run('a', async () => {
      await tick(10);
      done = true;
    });
    await chain.settled();
    expect(done).toBe(true);
    expect((chain as unknown as { tails: Map<string, unknown> }).tails.size).toBe(0);
  });
});
