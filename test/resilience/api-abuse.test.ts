// Promise 4b: hostile HTTP. Seeded fast-check requests (test/resilience/api-fuzz.ts) against novamon-api
// with a novamon-compute and one fixture guest behind it, one request at a time: no request holds
// novamon-api's event loop for 100 ms of CPU (its own probe logs every block of 20 ms or more), none
// crashes it or gets a 500, and no answer contains (and nothing opens) a canary file beside instances_path.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiStack, type ApiStack } from '../fixtures/api-stack.js';
import { attribute, Canary, loopBlocks, slowest, traversals, type TimedInput } from './abuse.js';
import { apiInputArbitrary, regressionInputs, send } from './api-fuzz.js';
import { round, writeReport } from './harness.js';

const COUNT = Number(process.env['RESILIENCE_API_FUZZ_COUNT'] ?? 1500);
const SEED = Number(process.env['RESILIENCE_FUZZ_SEED'] ?? 20261125);
const BUDGET_CPU_MS = 100;

describe('resilience: hostile HTTP to novamon-api', () => {
  let stack: ApiStack;
  let canary: Canary;

  beforeAll(async () => {
    stack = await startApiStack({
      // 28 characters: long enough for a backtracking name filter to take seconds.
      guests: [{ displayName: 'a'.repeat(28), projectId: 'admin', userId: 'admin', vnc: true }],
      auth: 'noauth2',
      rpcResponseTimeout: 5,
      extraConfig: '[DEFAULT]\nevent_loop_warning_ms = 20\n',
    });
    canary = new Canary(path.join(stack.workDir, 'outside'));
    await canary.watch();
  });

  afterAll(async () => {
    canary?.stop();
    await stack?.close();
  });

  it(`answers ${COUNT} fuzzed requests (seed ${SEED}) within the event-loop budget`, async () => {
    const uuid = stack.instances[0]!.uuid;
    const instancesPath = path.join(stack.workDir, 'instances');
    const trav = traversals(canary, instancesPath);
    const arb = apiInputArbitrary({ uuid, traversals: trav });
    const inputs: TimedInput[] = [];
    const statuses = new Map<number, number>();
    const errors: string[] = [];
    const leaks: string[] = [];
    for (const [i, input] of [...regressionInputs(trav), ...fc.sample(arb, { seed: SEED, numRuns: COUNT })].entries()) {
      const start = Date.now();
      const answer = await send(stack.url, input);
      inputs.push({ label: `#${i} ${input.label}`, start, end: Date.now() });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      if (answer.status >= 500 && answer.status !== 503) errors.push(`#${i} ${input.label} → ${answer.status} ${answer.body.toString().slice(0, 200)}`);
      if (answer.status === 0) errors.push(`#${i} ${input.label} → ${answer.error}`);
      if (canary.leaks(answer.body)) leaks.push(`#${i} ${input.label}`);
    }
    const health = await fetch(`${stack.url}/healthcheck`, { signal: AbortSignal.timeout(10_000) });
    const apiLog = readFileSync(path.join(stack.workDir, 'api.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const blocks = attribute(inputs, loopBlocks(apiLog));
    const overBudget = blocks.filter((b) => b.block.cpuMs >= BUDGET_CPU_MS);
    const worst = slowest(inputs, blocks);
    const byTrip = [...inputs].sort((a, b) => b.end - b.start - (a.end - a.start))[0]!;

    writeReport('4b-api-abuse', {
      promise: '4b. Hostile HTTP (novamon-api)',
      figures: [
        ['requests sent (seed)', `${inputs.length} (${SEED})`, `${COUNT} in the test`],
        ['answers by status', [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', '), 'no 500, no dropped connection'],
        ['event-loop blocks ≥ 20 ms logged by novamon-api / over 100 ms CPU', `${blocks.length} / ${overBudget.length}`, '0 over budget'],
        ['slowest input', worst, `< ${BUDGET_CPU_MS} ms CPU`],
        ['longest round trip', `${byTrip.label.slice(0, 100)} (${byTrip.end - byTrip.start} ms)`, ''],
        ['answers containing the canary / opens of the canary', `${leaks.length} / ${canary.touches}`, '0 / 0'],
        ['novamon-api healthy after', health.status, '200'],
      ],
      details: { overBudget: overBudget.slice(0, 20).map((b) => ({ ...b.block, input: b.input.label })), errors: errors.slice(0, 20), leaks, p50: round(inputs.map((x) => x.end - x.start).sort((a, b) => a - b)[Math.floor(inputs.length / 2)] ?? 0) },
    });

    expect(errors).toEqual([]);
    expect(leaks).toEqual([]);
    expect(canary.touches).toBe(0);
    expect(overBudget.map((b) => `${b.input.label}: ${b.block.cpuMs} ms CPU`)).toEqual([]);
    expect(health.status).toBe(200);
  });
});
