// The benchmark scripts' way out: cleanup steps run in reverse order of registration, at the end and on
// SIGINT/SIGTERM, then every fixture guest this process started is killed (they are daemonized QEMUs and
// outlive a killed parent).

import { killAllFixtureGuests } from '../../test/fixtures/guest.js';
import { progress } from './progress.js';

interface Step {
  what: string;
  fn: () => Promise<unknown>;
}

const steps: Step[] = [];
let cleaning: Promise<void> | null = null;

/** Registers a cleanup step; the returned function drops it again once its owner cleaned up by itself. */
export function onCleanup(what: string, fn: () => Promise<unknown>): () => void {
  const step = { what, fn };
  steps.push(step);
  return () => {
    const i = steps.indexOf(step);
    if (i >= 0) steps.splice(i, 1);
  };
}

/** Runs every registered step once (later calls wait for the same run), then kills the fixture guests. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    for (let step = steps.pop(); step; step = steps.pop()) {
      try {
        await step.fn();
      } catch (err) {
        progress(`cleanup (${step.what}) failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    await killAllFixtureGuests().catch(() => undefined);
  })();
  return cleaning;
}

/**
 * On SIGINT or SIGTERM: clean up, then exit with 130. Ctrl-C reaches the process more than once (the
 * terminal signals the whole process group, and npm and tsx each relay it to their child as well); every
 * signal after the first is acknowledged, not obeyed, since the default action would end the process
 * half-way through the cleanup and leave guests running.
 */
export function cleanUpOnSignals(): void {
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (signalled) {
        progress(`${sig}: still cleaning up`);
        return;
      }
      signalled = true;
      progress(`${sig}: cleaning up`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}
