// The soak and the fuzz report run (docs/resilience.md). `npm run soak -- --minutes 30`: novamon-compute from
// dist/ on a private RabbitMQ and PostgreSQL, a steady moderate load while fixture guests are stopped,
// started, paused and killed around it; samples RSS, the V8 heap, open fds, QMP connections and p99
// latency and reports their slopes. `npm run soak -- --fuzz 100000`: the hostile-input fuzzer's report run instead.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { startPrivatePostgres } from '../test/fixtures/private-postgres.js';
import { startPrivateRabbit } from '../test/fixtures/private-rabbit.js';
import { freePortIn } from '../test/fixtures/scratch.js';
import { cleanUpOnSignals, cleanupAll, onCleanup } from '../test/fixtures/cleanup.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../test/fixtures/guest.js';
import { runFuzz } from '../test/resilience/fuzz.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, metric, PacedLoad, percentile, procStats, resultsDir, round, uniqueName, writeComputeConfig } from '../test/resilience/harness.js';

const program = new Command('soak')
  .option('--minutes <n>', 'soak duration', '30')
  .option('--rate <n>', 'calls per second', '50')
  .option('--guests <n>', 'fixture guests', '3')
  .option('--fuzz <n>', 'run the fuzzer with this many messages instead of the soak')
  .option('--seed <n>', 'fuzzer seed', '20261125')
  .parse(process.argv);
const opts = program.opts<{ minutes: string; rate: string; guests: string; fuzz?: string; seed: string }>();
const out = (s: string) => process.stdout.write(`${s}\n`);

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<void> {
  // Ctrl-C stops the service, the guests and the private servers too; the report is written only at the end.
  cleanUpOnSignals();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-soak-'));
  onCleanup('temp dir', async () => rmSync(dir, { recursive: true, force: true }));
  const instancesPath = path.join(dir, 'instances');
  out('starting a private RabbitMQ node and PostgreSQL server...');
  const rabbitStarting = startPrivateRabbit();
  const pgStarting = startPrivatePostgres();
  onCleanup('private RabbitMQ', async () => (await rabbitStarting.catch(() => null))?.stop());
  onCleanup('private PostgreSQL', async () => (await pgStarting.catch(() => null))?.stop());
  onCleanup('guests', () => killAllFixtureGuests());
  const [rabbit, pg] = await Promise.all([rabbitStarting, pgStarting]);
  const host = uniqueName('soak_host');
  const exchange = uniqueName('soak');
  let compute: ComputeProcess | null = null;
  let caller: Caller | null = null;
  onCleanup('rpc caller', async () => caller?.close());
  onCleanup('novamon-compute', async () => compute?.stop());
  try {
    const dbUrl = await createTestDatabase(pg.url, uniqueName('soak'));
    const opsPort = await freePortIn(40000, 45000);
    const configFile = writeComputeConfig(dir, { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath, commandTimeoutSeconds: 5, opsPort });
    mkdirSync(resultsDir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');

    if (opts.fuzz) {
      compute = await ComputeProcess.start(configFile);
      caller = new Caller(rabbit.url, exchange, host, 20_000);
      await caller.call('get_host_uptime');
      await Promise.all(Array.from({ length: 300 }, () => caller!.call('get_host_uptime')));
      const count = Number(opts.fuzz);
      const seed = Number(opts.seed);
      const amqpUrl = `amqp://guest:guest@127.0.0.1:${rabbit.port}`;
      await runFuzz({ amqpUrl, exchange, host, count: Math.ceil(count / 20), seed: seed + 1 });
      await sleep(2000);
      const before = procStats(compute.pid);
      const result = await runFuzz({ amqpUrl, exchange, host, count, seed, onProgress: (n) => n % 10_000 === 0 && out(`${n} sent`) });
      await sleep(2000);
      const after = procStats(compute.pid);
      const stillConsuming = typeof (await caller.call('get_host_uptime')) === 'string';
      // Per-message timings are for the event-loop attribution of the test; a 100,000-line JSON helps nobody.
      const report = { kind: 'fuzz', at: new Date().toISOString(), result: { ...result, timed: result.timed.length }, rssBeforeKb: before.rssKb, rssAfterKb: after.rssKb, crashed: !compute.alive, stillConsuming };
      writeFileSync(path.join(resultsDir, 'resilience-fuzz-report-run.json'), `${JSON.stringify(report, null, 2)}\n`);
      const md = [
        '# novamon fuzz report run', '', `_${report.at}_, seed ${seed}, \`npm run soak -- --fuzz ${count}\``, '',
        '| figure | measured | promise |', '|---|---|---|',
        `| messages sent | ${result.sent} | ≥ 100,000 |`,
        `| calls answerable / answered / missing | ${result.expectedReplies} / ${result.replies} / ${result.missingReplies} | all answered |`,
        `| answers failure / success / malformed | ${result.failures} / ${result.successes} / ${result.malformedReplies} | 0 malformed |`,
        `| crashes | ${report.crashed ? 1 : 0} | 0 |`,
        `| RSS before / after (MiB) | ${round(before.rssKb / 1024)} / ${round(after.rssKb / 1024)} | ≤ 1.5× |`,
        `| consumer still consuming | ${stillConsuming ? 'yes' : 'no'} | yes |`,
        `| duration (s) | ${round(result.seconds)} | |`, '',
      ].join('\n');
      writeFileSync(path.join(resultsDir, 'resilience-fuzz-report-run.md'), md);
      out(md);
      return;
    }

    const minutes = Number(opts.minutes);
    const rate = Number(opts.rate);
    const ids = Array.from({ length: Number(opts.guests) }, (_, i) => 0x5500 + i);
    const name = (id: number) => `instance-${id.toString(16).padStart(8, '0')}`;
    const guests = new Map<number, FixtureGuest>();
    for (const id of ids) guests.set(id, await startFixtureGuest({ instancesPath, name: name(id) }));
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 15_000);
    const c = caller;
    const inst = (id: number) => instanceArg(guests.get(id) as FixtureGuest, id, host);
    for (const id of ids) await c.call('get_diagnostics', { instance: inst(id) }, { timeoutMs: 60_000 });

    // Reads on every guest (failures while a guest is down are expected and counted), plus host calls.
    const load = new PacedLoad((i) => (i % 4 === 0 ? c.call('get_host_uptime') : c.call('get_console_output', { instance: inst(ids[i % ids.length] as number), tail_length: 5 })), rate).start();
    const samples: Array<{ t: number; rssKb: number; heapMiB: number; fds: number; qmp: number; p99: number }> = [];
    const chaos: string[] = [];
    const endAt = Date.now() + minutes * 60_000;
    let nextChaos = Date.now() + 10_000;
    let lastSampleIdx = 0;
    let step = 0;
    while (Date.now() < endAt && compute.alive) {
      await sleep(5000);
      const recent = load.samples.slice(lastSampleIdx).filter((s) => s.outcome === 'ok').map((s) => s.ms);
      lastSampleIdx = load.samples.length;
      const st = procStats(compute.pid);
      // The V8 heap in use (prom-client's default metric): heap growth is a leak of ours; RSS growth with a flat heap is the allocator or native buffers.
      const heapMiB = round((await metric(opsPort, 'nodejs_heap_size_used_bytes').catch(() => -1)) / 1048576);
      samples.push({ t: load.elapsedMs / 1000, rssKb: st.rssKb, heapMiB, fds: st.fds, qmp: await metric(opsPort, 'novamon_qmp_connections').catch(() => -1), p99: percentile(recent, 0.99) });
      if (Date.now() >= nextChaos) {
        nextChaos = Date.now() + 10_000;
        const id = ids[step % ids.length] as number;
        const action = ['pause', 'stop', 'kill'][Math.floor(step / ids.length) % 3] as string;
        step++;
        try {
          if (action === 'pause') {
            await c.call('pause_instance', { instance: inst(id) });
            await sleep(2000);
            await c.call('unpause_instance', { instance: inst(id) });
          } else if (action === 'stop') {
            await c.call('stop_instance', { instance: inst(id), clean_shutdown: false }, { timeoutMs: 60_000 });
            await sleep(2000);
            await c.call('start_instance', { instance: inst(id) }, { timeoutMs: 60_000 });
          } else {
            const g = guests.get(id) as FixtureGuest;
            const pid = g.currentPid();
            if (pid) process.kill(pid, 'SIGKILL');
            await sleep(2000);
            guests.set(id, await startFixtureGuest({ instancesPath, name: g.name, uuid: g.uuid }));
          }
          chaos.push(`${round(load.elapsedMs / 1000)} s: ${action} ${name(id)}`);
        } catch (err) {
          chaos.push(`${round(load.elapsedMs / 1000)} s: ${action} ${name(id)} failed: ${String(err).slice(0, 120)}`);
        }
      }
      const last = samples[samples.length - 1];
      if (last) out(`t=${round(last.t)}s rss=${round(last.rssKb / 1024)}MiB heap=${last.heapMiB}MiB fds=${last.fds} qmp=${last.qmp} p99=${round(last.p99)}ms`);
    }
    await load.stop();
    const summary = load.summary();
    // Slopes over the second half (after warm-up), per hour.
    const tail = samples.slice(Math.floor(samples.length / 2));
    const perHour = (f: (s: (typeof samples)[number]) => number) => round(slope(tail.map((s) => [s.t / 3600, f(s)])), 2);
    const report = {
      kind: 'soak', at: new Date().toISOString(), minutes, rate, guests: ids.length, crashed: !compute.alive, summary,
      slopesPerHour: { rssMiB: perHour((s) => s.rssKb / 1024), heapMiB: perHour((s) => s.heapMiB), fds: perHour((s) => s.fds), qmpConnections: perHour((s) => s.qmp), p99Ms: perHour((s) => s.p99) },
      first: samples[0], last: samples[samples.length - 1], chaos, samples,
    };
    writeFileSync(path.join(resultsDir, `soak-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
    const md = [
      '# novamon soak', '', `_${report.at}_: \`npm run soak -- --minutes ${minutes}\`, ${rate} calls/s, ${ids.length} guests stopped/started/paused/killed every 10 s`, '',
      '| figure | first sample | last sample | slope per hour (second half) |', '|---|---|---|---|',
      `| RSS (MiB) | ${round((report.first?.rssKb ?? 0) / 1024)} | ${round((report.last?.rssKb ?? 0) / 1024)} | ${report.slopesPerHour.rssMiB} |`,
      `| V8 heap used (MiB) | ${report.first?.heapMiB} | ${report.last?.heapMiB} | ${report.slopesPerHour.heapMiB} |`,
      `| open fds | ${report.first?.fds} | ${report.last?.fds} | ${report.slopesPerHour.fds} |`,
      `| QMP connections | ${report.first?.qmp} | ${report.last?.qmp} | ${report.slopesPerHour.qmpConnections} |`,
      `| p99 latency (ms, 5 s window) | ${round(report.first?.p99 ?? 0)} | ${round(report.last?.p99 ?? 0)} | ${report.slopesPerHour.p99Ms} |`, '',
      `calls sent ${summary.sent}, answered ${summary.answered}, failed ${summary.failed} (reads of a guest while it was down), timed out ${summary.timedOut}; crashes ${report.crashed ? 1 : 0}; fault injections ${chaos.length}.`, '',
    ].join('\n');
    writeFileSync(path.join(resultsDir, `soak-${stamp}.md`), md);
    writeFileSync(path.join(resultsDir, 'soak-latest.md'), md);
    out(md);
  } finally {
    // In reverse order of registration: the service, the caller, the guests, the private servers, the temp dir.
    await cleanupAll();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
