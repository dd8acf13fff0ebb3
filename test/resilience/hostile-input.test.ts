// Promise 4: hostile bytes. A seeded fast-check fuzzer (test/resilience/fuzz.ts) sends a few thousand
// mutated oslo messages to novamon-compute: no crash, every call it can answer answered with a well-formed
// success or failure, RSS after <= 1.5x before, and the consumer still consuming. The main run goes one
// message at a time, so each event-loop block novamon logs (its own probe, 20 ms and up) is matched to
// the message it served: none may hold the loop for 100 ms of CPU. NovaObject fields carry names that
// would leave instances_path, and symlinks planted there point at a canary outside it: no answer may
// contain the canary and nothing may open it. The 100,000-message report run is
// `npm run soak -- --fuzz 100000` (same generator, same seed rule).

import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { attachPrivatePostgres } from '../fixtures/private-postgres.js';
import { attachPrivateRabbit, type PrivateRabbit } from '../fixtures/private-rabbit.js';
import { attribute, Canary, loopBlocks, slowest, traversals } from './abuse.js';
import { runFuzz } from './fuzz.js';
import { Caller, ComputeProcess, createTestDatabase, procStats, round, uniqueName, writeComputeConfig, writeReport } from './harness.js';

const pgInfo = inject('privatePostgres');
const rabbitInfo = inject('privateRabbit');
const COUNT = Number(process.env['RESILIENCE_FUZZ_COUNT'] ?? 3000);
/** Messages of the budget run, sent one at a time so each event-loop block names its message. */
const BUDGET_COUNT = Number(process.env['RESILIENCE_FUZZ_BUDGET_COUNT'] ?? 500);
const SEED = Number(process.env['RESILIENCE_FUZZ_SEED'] ?? 20261125);

describe.runIf(pgInfo && rabbitInfo)('resilience: hostile input', () => {
  const host = uniqueName('res_fuzz_host');
  const exchange = uniqueName('res_fuzz');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-fuzz-'));
  let rabbit: PrivateRabbit;
  let compute: ComputeProcess;
  let caller: Caller;
  const instancesPath = path.join(dir, 'instances');
  const canary = new Canary(path.join(dir, 'outside'));

  beforeAll(async () => {
    rabbit = attachPrivateRabbit(rabbitInfo!);
    // The fuzzer's base instance is id 0xf00d: its console log and pid file lead to the canary.
    mkdirSync(instancesPath, { recursive: true });
    for (const suffix of ['console.log', 'pid', 'qemu.log']) symlinkSync(canary.file, path.join(instancesPath, `instance-0000f00d.${suffix}`));
    await canary.watch();
    const dbUrl = await createTestDatabase(attachPrivatePostgres(pgInfo!).url, uniqueName('res_fuzz'));
    const configFile = writeComputeConfig(dir, { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath, extra: '[DEFAULT]\nevent_loop_warning_ms = 20\n' });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 20_000);
  });

  afterAll(async () => {
    await compute?.stop();
    await caller?.close();
    canary.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`answers ${COUNT} fuzzed messages (seed ${SEED}) without crashing or growing`, async () => {
    const t0 = Date.now();
    const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.port}`;
    await caller.call('get_host_uptime');
    // Warm-up (valid calls and a smaller fuzz run of another seed) so the baseline is the working set, not a
    // cold heap: the promise is about growth, i.e. leaks.
    await Promise.all(Array.from({ length: 300 }, () => caller.call('get_host_uptime')));
    const coldKb = procStats(compute.pid).rssKb;
    await runFuzz({ amqpUrl, exchange, host, count: Math.ceil(COUNT / 5), seed: SEED + 1 });
    await sleep(2000);
    const before = procStats(compute.pid);
    const trav = traversals(canary, instancesPath);
    const result = await runFuzz({ amqpUrl, exchange, host, count: COUNT, seed: SEED, traversals: trav, secret: canary.secret });
    const fromLine = compute.lines.length;
    const budget = await runFuzz({ amqpUrl, exchange, host, count: BUDGET_COUNT, seed: SEED + 2, window: 1, traversals: trav, secret: canary.secret });
    const blocks = attribute(budget.timed, loopBlocks(compute.lines.slice(fromLine)));
    const overBudget = blocks.filter((b) => b.block.cpuMs >= 100);
    await Promise.all(Array.from({ length: 300 }, () => caller.call('get_host_uptime')));
    await sleep(2000);
    const after = procStats(compute.pid);

    expect(compute.alive).toBe(true);
    expect(result.missingReplies).toBe(0);
    expect(result.malformedReplies).toBe(0);
    expect(result.replies).toBe(result.expectedReplies);
    expect(after.rssKb).toBeLessThanOrEqual(before.rssKb * 1.5);
    expect(typeof (await caller.call('get_host_uptime'))).toBe('string');
    expect(budget.missingReplies).toBe(0);
    expect(budget.malformedReplies).toBe(0);
    expect([...result.leaks, ...budget.leaks]).toEqual([]);
    expect(canary.touches).toBe(0);
    expect(overBudget.map((b) => `${b.input.label}: ${b.block.cpuMs} ms CPU`)).toEqual([]);

    writeReport('4-hostile-input', {
      promise: '4. Hostile input (oslo messages)',
      figures: [
        ['messages sent (seed)', `${result.sent} (${SEED})`, '≥ 2,000 in the test; ≥ 100,000 in the report run'],
        ['calls answerable / answered / missing', `${result.expectedReplies} / ${result.replies} / ${result.missingReplies}`, 'every answerable call answered'],
        ['answers: failure / success / malformed', `${result.failures} / ${result.successes} / ${result.malformedReplies}`, '0 malformed'],
        ['crashes', compute.alive ? 0 : 1, '0'],
        ['RSS cold / before (after warm-up) / after (MiB)', `${round(coldKb / 1024)} / ${round(before.rssKb / 1024)} / ${round(after.rssKb / 1024)}`, 'after ≤ 1.5× before'],
        ['consumer still consuming', 'yes', 'yes'],
        ['budget run: messages one at a time (seed) / answerable / answered', `${budget.sent} (${SEED + 2}) / ${budget.expectedReplies} / ${budget.replies}`, 'every answerable call answered'],
        ['budget run: event-loop blocks ≥ 20 ms logged / over 100 ms CPU', `${blocks.length} / ${overBudget.length}`, '0 over budget'],
        ['slowest message', slowest(budget.timed, blocks), '< 100 ms CPU'],
        ['answers containing the canary / opens of the canary (both runs)', `${result.leaks.length + budget.leaks.length} / ${canary.touches}`, '0 / 0'],
        ['test duration (s)', round((Date.now() - t0) / 1000), ''],
        ['messages per kind', Object.entries(result.byKind).map(([k, v]) => `${k} ${v}`).join(', '), ''],
        ['novamon-api (HTTP)', 'section 4b', ''],
      ],
      details: { result: { ...result, timed: result.timed.length }, budget: { ...budget, timed: budget.timed.length }, overBudget: overBudget.map((b) => ({ ...b.block, input: b.input.label })) },
    });
  }, 360_000);
});
