// Per-guest samples for /metrics: the diagnostics collection (collectGuestStats) run for every connected
// guest, a few at a time, each bounded by a timeout so one frozen monitor cannot hold a scrape.

import type { GuestSample, GuestSamples } from '../driver.js';
import type { GuestStats } from './diagnostics.js';
import type { GuestModel } from './model.js';
import { guestView } from './view.js';

export function toSample(model: GuestModel, s: GuestStats): GuestSample {
  return {
    view: guestView(model),
    cpuTimeNs: s.cpuTimeNs,
    cpus: s.cpus,
    disks: s.disks,
    nics: s.nics.map((n) => ({ name: n.name, hostDevice: n.hostDevice, counters: n.counters })),
    memory: { maximumBytes: s.memory.maximumBytes, balloonActualBytes: s.memory.balloonActualBytes, guestStats: s.memory.guestStats, rssKiB: s.memory.rssKiB },
    monitorSeconds: s.monitorSeconds,
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Collect `models` with at most `concurrency` in flight; a failure or timeout only drops that guest. */
export async function sampleGuests(
  models: readonly GuestModel[],
  collect: (model: GuestModel) => Promise<GuestStats>,
  opts: { concurrency: number; timeoutMs: number },
  onError: (model: GuestModel, err: unknown) => void,
): Promise<GuestSamples> {
  const out: GuestSamples = { samples: [], failed: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < models.length) {
      const model = models[next++]!;
      try {
        const stats = await withTimeout(collect(model), opts.timeoutMs);
        out.samples.push(toSample(model, stats));
      } catch (err) {
        out.failed++;
        onError(model, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, models.length)) }, worker));
  return out;
}
