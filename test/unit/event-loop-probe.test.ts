import { describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { EventLoopProbe } from '../../src/event-loop-probe.js';

describe('event loop probe', () => {
  it('logs a block with the CPU time the process spent in it, and keeps the longest', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const probe = new EventLoopProbe(logger, 100).start();
    await sleep(50);
    // Hold the loop for 150 ms of wall time and until the process has used 150 ms of CPU: wall time may be
    // longer on a busy host, and shorter than the CPU time when other threads (GC) run meanwhile.
    const start = process.cpuUsage();
    const t0 = performance.now();
    for (;;) {
      const used = process.cpuUsage(start);
      if ((used.user + used.system) / 1000 >= 150 && performance.now() - t0 >= 150) break;
    }
    await sleep(50);
    probe.stop();
    const blocks = lines.filter((l) => l['msg'] === 'event loop blocked');
    expect(blocks).toHaveLength(1);
    expect(blocks[0]!['blockedMs']).toBeGreaterThanOrEqual(140);
    expect(blocks[0]!['cpuMs']).toBeGreaterThanOrEqual(140);
    expect(probe.longest?.cpuMs).toBe(blocks[0]!['cpuMs']);
  });

  it('ticks every tenth of its threshold, between 10 and 50 ms', () => {
    const logger = pino({ level: 'silent' });
    expect(new EventLoopProbe(logger, 100).intervalMs).toBe(10);
    expect(new EventLoopProbe(logger, 200).intervalMs).toBe(20);
    expect(new EventLoopProbe(logger, 5000).intervalMs).toBe(50);
    expect(new EventLoopProbe(logger, 30).intervalMs).toBe(10);
  });

  it('with a coarser tick still reports a block past the threshold, within one tick', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const probe = new EventLoopProbe(logger, 400).start();
    expect(probe.intervalMs).toBe(40);
    await sleep(60);
    const t0 = performance.now();
    while (performance.now() - t0 < 500);
    await sleep(100);
    probe.stop();
    const blocks = lines.filter((l) => l['msg'] === 'event loop blocked');
    expect(blocks).toHaveLength(1);
    expect(blocks[0]!['blockedMs']).toBeGreaterThanOrEqual(500 - 40);
  });
});
