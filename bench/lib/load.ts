// The closed-loop load generator: `concurrency` workers, each issuing its next call as soon as the last one
// answered, for a warm-up (not recorded) and then a measured window. Latencies are wall-clock per call.

import { summarize, type LatencySummary } from './stats.js';

export interface LoadOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** One call; `seq` counts calls across all workers (use it to pick a guest round-robin). */
  call: (seq: number) => Promise<unknown>;
  /** Called once between warm-up and the measured window (e.g. to sample the service's CPU). */
  onMeasureStart?: () => void | Promise<void>;
  /** Called once when the measured window closed, before stragglers drain. */
  onMeasureEnd?: () => void | Promise<void>;
}

export interface LoadResult {
  concurrency: number;
  calls: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  callsPerSec: number;
  latencyMs: LatencySummary;
}

export async function runClosedLoop(opts: LoadOptions): Promise<LoadResult> {
  let seq = 0;
  let phase: 'warmup' | 'measure' | 'done' = 'warmup';
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;

  const worker = async (): Promise<void> => {
    while (phase !== 'done') {
      const t0 = performance.now();
      try {
        await opts.call(seq++);
        // Calls that complete inside the window count (the load is steady by then, whenever they started).
        if (phase === 'measure') latencies.push(performance.now() - t0);
      } catch (err) {
        if (phase === 'measure') errors++;
        firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        // A failing service must not turn the loop into a busy spin.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  const workers = Array.from({ length: opts.concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, opts.warmupMs));
  await opts.onMeasureStart?.();
  const measureStart = performance.now();
  phase = 'measure';
  await new Promise((r) => setTimeout(r, opts.durationMs));
  phase = 'done';
  const measureEnd = performance.now();
  await opts.onMeasureEnd?.();
  await Promise.all(workers);
  const elapsedMs = measureEnd - measureStart;
  return {
    concurrency: opts.concurrency,
    calls: latencies.length,
    errors,
    firstError,
    elapsedMs,
    callsPerSec: (latencies.length / elapsedMs) * 1000,
    latencyMs: summarize(latencies),
  };
}
