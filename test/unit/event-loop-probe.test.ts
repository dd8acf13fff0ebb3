import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { EventLoopProbe } from '../../src/event-loop-probe.js';

describe('event loop probe', () => {
  it('logs a block with the CPU time the process spent in it, and keeps the longest', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
    const probe = new EventLoopProbe(logger, 100).start();
    await sleep(50);
    // Hold the loop until the process has used 150 ms of CPU (wall time may be longer on a busy host).
    const start = process.cpuUsage();
    for (;;) {
      const used = process.cpuUsage(start);
      if ((used.user + used.system) / 1000 >= 150) break;
    }
    await sleep(50);
    probe.stop();
    const blocks = lines.filter((l) => l['msg'] === 'event loop blocked');
    expect(blocks).toHaveLength(1);
    expect(blocks[0]!['blockedMs']).toBeGreaterThanOrEqual(140);
    expect(blocks[0]!['cpuMs']).toBeGreaterThanOrEqual(140);
    expect(probe.longest?.cpuMs).toBe(blocks[0]!['cpuMs']);
  });
});
