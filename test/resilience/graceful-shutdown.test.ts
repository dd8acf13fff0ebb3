// Promise 5: SIGTERM under load. novamon-compute stops consuming, finishes and answers the calls in flight
// (including ones stuck on a frozen guest until command_timeout), leaves what it had not started to the
// broker, closes its QMP and AMQP connections and exits 0 within 10 s; a new process answers the rest, so
// the caller loses nothing. A second signal in the middle of that stop (Ctrl-C under npm arrives twice)
// does not cut it short.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { attachPrivatePostgres } from '../fixtures/private-postgres.js';
import { attachPrivateRabbit } from '../fixtures/private-rabbit.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, PacedLoad, round, uniqueName, writeComputeConfig, writeReport } from './harness.js';

const pgInfo = inject('privatePostgres');
const rabbitInfo = inject('privateRabbit');

describe.runIf(pgInfo && rabbitInfo)('resilience: graceful shutdown under load', () => {
  const host = uniqueName('res_term_host');
  const exchange = uniqueName('res_term');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-term-'));
  const instancesPath = path.join(dir, 'instances');
  const idA = 0x5400 + Math.floor(Math.random() * 0xff);
  const idB = idA + 0x100;
  let a: FixtureGuest;
  let b: FixtureGuest;
  let configFile: string;
  let compute: ComputeProcess | null = null;
  let caller: Caller;
  let rabbitPort = 0;
  const queueDepth = async (queue: string): Promise<number> => {
    const { connect } = await import('amqplib');
    const c = await connect(`amqp://guest:guest@127.0.0.1:${rabbitPort}`);
    try {
      return (await (await c.createChannel()).checkQueue(queue)).messageCount;
    } finally {
      await c.close();
    }
  };

  beforeAll(async () => {
    const rabbit = attachPrivateRabbit(rabbitInfo!);
    rabbitPort = rabbit.port;
    const dbUrl = await createTestDatabase(attachPrivatePostgres(pgInfo!).url, uniqueName('res_term'));
    const name = (id: number) => `instance-${id.toString(16).padStart(8, '0')}`;
    [a, b] = await Promise.all([startFixtureGuest({ instancesPath, name: name(idA) }), startFixtureGuest({ instancesPath, name: name(idB) })]);
    configFile = writeComputeConfig(dir, { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath, commandTimeoutSeconds: 3 });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 40_000);
  });

  afterAll(async () => {
    const pid = a?.currentPid();
    if (pid) process.kill(pid, 'SIGCONT');
    await compute?.stop();
    await caller?.close();
    await killAllFixtureGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers in-flight calls, leaves the rest for redelivery, closes everything and exits 0 within 10 s', async () => {
    const instA = instanceArg(a, idA, host);
    const instB = instanceArg(b, idB, host);
    await caller.call('get_diagnostics', { instance: instA }, { timeoutMs: 60_000 });
    await caller.call('get_diagnostics', { instance: instB }, { timeoutMs: 60_000 });
        const kinds: string[] = [];
    const load = new PacedLoad((i) => {
      kinds[i] = i % 2 === 0 ? 'diagnostics' : 'uptime';
      return i % 2 === 0 ? caller.call('get_diagnostics', { instance: instB }) : caller.call('get_host_uptime');
    }, 200).start();
    await sleep(2000);
    // Calls stuck in flight: the frozen guest answers nothing until command_timeout (3 s) fails them.
    const first0 = compute!;
    process.kill(a.currentPid() as number, 'SIGSTOP');
    const stuck = Array.from({ length: 3 }, () => caller.call('get_diagnostics', { instance: instA }).then(() => 'ok', (e: unknown) => String(e)));
    // Long enough to be certainly delivered and running, well before the 3 s command_timeout.
    await first0.waitForLog(/./, 1);
    await sleep(1500);
    const first = compute!;
    const from = first.lines.length;
    const tTerm = performance.now();
    first.kill('SIGTERM');
    // The stuck calls hold the stop for about 1.5 s more: the second signal lands in the middle of it.
    await sleep(300);
    const stoppingWhenSignalledAgain = first.alive;
    first.kill('SIGTERM');
    const exit = await first.exited;
    const exitSeconds = (exit.at - tTerm) / 1000;
    const stuckAnswers = await Promise.all(stuck);
    // The rest of the load lands in the queue; a new process answers it.
    await sleep(1000);
    const depthAfterExit = await queueDepth(`compute.${host}`);
    // Thaw the guest before the next process starts: a service starting beside a frozen guest is another
    // story (see docs/resilience.md, known issues).
    process.kill(a.currentPid() as number, 'SIGCONT');

    compute = await ComputeProcess.start(configFile);
    await sleep(3000);
    await load.stop();
    const summary = load.summary();
    const log = first.lines.slice(from).map((l) => l.msg);

    const tTermLoad = tTerm - (performance.now() - load.elapsedMs);
    const lost = load.samples.filter((x) => x.outcome !== 'ok');
    const lostBeforeTerm = lost.filter((x) => x.t < tTermLoad);
    writeReport('5-graceful-shutdown', {
      promise: '5. Graceful shutdown (SIGTERM under load)',
      figures: [
        ['load (calls/s)', 200, ''],
        ['SIGTERM to exit (s)', round(exitSeconds, 2), '< 10 s'],
        ['exit code (a second SIGTERM 0.3 s into the stop)', String(exit.code), '0'],
        ['calls left in the queue for the next process at exit', depthAfterExit, 'unacked work redelivered, not lost'],
        ['calls in flight on a frozen guest at SIGTERM: answered before exit', `${stuckAnswers.length} / ${stuck.length}`, 'all (with the timeout failure)'],
        ['caller side: sent / answered / failed / timed out', `${summary.sent} / ${summary.answered} / ${summary.failed} / ${summary.timedOut}`, 'none lost: the rest redelivered to the next process'],
        ['calls never answered (sent before / after SIGTERM)', `${lostBeforeTerm.length} / ${lost.length - lostBeforeTerm.length}`, '0 (see docs/resilience.md, known issues)'],
        ['QMP and AMQP connections closed (driver and connection closed before "stopped")', log.includes('stopped') ? 'yes' : 'no', 'yes'],
      ],
    });

    expect(stoppingWhenSignalledAgain).toBe(true);
    expect(log).toContain('already stopping');
    expect(exit.code).toBe(0);
    expect(exitSeconds).toBeLessThan(10);
    // In flight at SIGTERM: answered (the frozen guest's timeout failure), not dropped.
    for (const s of stuckAnswers) expect(s).toMatch(/RemoteError.*[Tt]imeout/);
    expect(log).toContain('RPC server stopped');
    expect(log).toContain('stopped');
    expect(first.errors()).toEqual([]);
    // What the first process had not started stayed with the broker for the next one.
    expect(depthAfterExit).toBeGreaterThan(0);
    // Nothing lost on the caller's side.
    expect(lost.map((x) => ({ i: x.i, kind: kinds[x.i], t: Math.round(x.t), error: x.error }))).toEqual([]);
  });
});
