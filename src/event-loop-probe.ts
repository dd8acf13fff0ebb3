// Watches the service's own event loop: a timer that notices when it fires late. A late tick means
// something held the loop (a synchronous parse, a regex, a blocking read) or the process was not
// scheduled; the CPU time the process used over the gap tells the two apart. Blocks at or above the
// threshold are logged ('event loop blocked'), and the longest one is kept for /metrics. The timer ticks
// every tenth of the threshold (10 to 50 ms): a block is measured to within one tick, and an idle service
// is not woken 100 times a second for a 200 ms threshold.

import { performance } from 'node:perf_hooks';
import type { Logger } from './logging.js';

export interface EventLoopBlock {
  /** Epoch ms when the block started. */
  startedAt: number;
  /** Wall-clock ms the loop was held past its tick. */
  blockedMs: number;
  /** CPU ms the process used over the same gap (all its threads: an upper bound for the loop's share). */
  cpuMs: number;
}

export class EventLoopProbe {
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private lastCpu = process.cpuUsage();
  /** The longest block seen since start. */
  longest: EventLoopBlock | null = null;

  /** The timer's period, ms. */
  readonly intervalMs: number;

  constructor(
    private readonly logger: Logger,
    private readonly thresholdMs: number,
    intervalMs?: number,
  ) {
    this.intervalMs = intervalMs ?? Math.min(50, Math.max(10, Math.round(thresholdMs / 10)));
  }

  start(): this {
    this.last = performance.now();
    this.lastCpu = process.cpuUsage();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  private tick(): void {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const blockedMs = now - this.last - this.intervalMs;
    if (blockedMs >= this.thresholdMs) {
      const cpuMs = (cpu.user - this.lastCpu.user + cpu.system - this.lastCpu.system) / 1000;
      const block = { startedAt: Date.now() - blockedMs, blockedMs: Math.round(blockedMs * 10) / 10, cpuMs: Math.round(cpuMs * 10) / 10 };
      if (!this.longest || block.cpuMs > this.longest.cpuMs) this.longest = block;
      this.logger.warn({ component: 'event-loop', ...block }, 'event loop blocked');
    }
    this.last = now;
    this.lastCpu = cpu;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
