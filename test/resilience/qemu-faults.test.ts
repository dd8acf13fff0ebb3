// Promise 2: a guest's QEMU dies or freezes under novamon-compute. SIGKILL while a command is in flight:
// the call gets a failure within 1 s, power_state SHUTDOWN reaches the database within 1 s, an instance
// fault row is written, the QMP connection leaves the registry, and the guest is served again once it
// runs. SIGSTOP: calls to it fail after [monitor] command_timeout (2 s here) plus at most a 1 s liveness
// ping, later calls fail at once, another guest keeps its normal latency; after SIGCONT it is served again.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../../src/db/knex.js';
import { PowerState } from '../../src/virt/power-state.js';
import { attachPrivatePostgres } from '../fixtures/private-postgres.js';
import { attachPrivateRabbit } from '../fixtures/private-rabbit.js';
import { freePortIn } from '../fixtures/scratch.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, metric, openTestDb, PacedLoad, percentile, round, uniqueName, waitFor, writeComputeConfig, writeReport } from './harness.js';

const pgInfo = inject('privatePostgres');
const rabbitInfo = inject('privateRabbit');
const COMMAND_TIMEOUT_S = 2;

describe.runIf(pgInfo && rabbitInfo)('resilience: QEMU killed or frozen', () => {
  const host = uniqueName('res_qemu_host');
  const exchange = uniqueName('res_qemu');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-qemu-'));
  const instancesPath = path.join(dir, 'instances');
  const idA = 0x5300 + Math.floor(Math.random() * 0xff);
  const idB = idA + 0x100;
  const nameOf = (id: number) => `instance-${id.toString(16).padStart(8, '0')}`;
  let a: FixtureGuest;
  let b: FixtureGuest;
  let compute: ComputeProcess;
  let caller: Caller;
  let db: Database;
  let opsPort: number;
  let instA: Record<string, unknown>;
  let instB: Record<string, unknown>;
  const figures: Array<[string, string | number, string]> = [];

  beforeAll(async () => {
    const rabbit = attachPrivateRabbit(rabbitInfo!);
    const dbUrl = await createTestDatabase(attachPrivatePostgres(pgInfo!).url, uniqueName('res_qemu'));
    db = await openTestDb(dbUrl);
    [a, b] = await Promise.all([startFixtureGuest({ instancesPath, name: nameOf(idA) }), startFixtureGuest({ instancesPath, name: nameOf(idB) })]);
    instA = instanceArg(a, idA, host);
    instB = instanceArg(b, idB, host);
    opsPort = await freePortIn(40000, 45000);
    const configFile = writeComputeConfig(dir, { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath, commandTimeoutSeconds: COMMAND_TIMEOUT_S, opsPort });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 30_000);
  });

  afterAll(async () => {
    for (const g of [a, b]) {
      const pid = g?.currentPid();
      if (pid) process.kill(pid, 'SIGCONT');
    }
    await compute?.stop();
    await caller?.close();
    await db?.close();
    await killAllFixtureGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  afterAll(() => {
    writeReport('2-qemu-faults', { promise: '2. QEMU killed mid-command / frozen', figures });
  });

  it('SIGKILL mid-command: failure within 1 s, SHUTDOWN in the database within 1 s, a fault row, the connection dropped, served again after restart', async () => {
    await caller.call('get_diagnostics', { instance: instA }, { timeoutMs: 60_000 });
    await caller.call('get_diagnostics', { instance: instB }, { timeoutMs: 60_000 });
    const connectionsBefore = await metric(opsPort, 'novamon_qmp_connections');
    expect(connectionsBefore).toBe(2);

    // Freeze first so the command is certainly in flight (QEMU cannot answer), then kill.
    const pid = a.currentPid() as number;
    process.kill(pid, 'SIGSTOP');
    const pending = caller.call('get_instance_diagnostics', { instance: instA }).then(
      () => ({ ok: true, at: performance.now(), err: '' }),
      (err: unknown) => ({ ok: false, at: performance.now(), err: String(err) }),
    );
    await sleep(300);
    const tKill = performance.now();
    process.kill(pid, 'SIGKILL');
    const reply = await pending;
    const replySeconds = (reply.at - tKill) / 1000;
    const shutdownAt = await waitFor('power_state SHUTDOWN in the database', async () => {
      const row = (await db.knex('instances').where({ uuid: a.uuid }).first()) as Record<string, unknown> | undefined;
      return row?.['power_state'] === PowerState.SHUTDOWN ? performance.now() : null;
    }, 10_000, 20);
    const dbSeconds = (shutdownAt - tKill) / 1000;
    const faults = (await db.knex('instance_faults').where({ instance_uuid: a.uuid })) as Array<Record<string, unknown>>;
    const connectionsAfter = await metric(opsPort, 'novamon_qmp_connections');

    expect(reply.ok).toBe(false);
    expect(reply.err).toMatch(/RemoteError/);
    expect(replySeconds).toBeLessThan(1);
    expect(dbSeconds).toBeLessThan(1);
    expect(faults.length).toBeGreaterThanOrEqual(1);
    expect(connectionsAfter).toBe(1);

    // The guest runs again (a new QEMU on the same socket): the next call reconnects.
    a = await startFixtureGuest({ instancesPath, name: a.name, uuid: a.uuid });
    const again = await waitFor('the restarted guest to be served', () => caller.call('get_diagnostics', { instance: instA }, { timeoutMs: 10_000 }).catch(() => null), 30_000, 200);
    expect(again).toBeTruthy();
    expect(await metric(opsPort, 'novamon_qmp_connections')).toBe(2);
    expect(compute.alive).toBe(true);
    figures.push(
      ['SIGKILL: failure reply after the kill (s)', round(replySeconds, 3), '< 1 s'],
      ['SIGKILL: power_state SHUTDOWN in the database after the kill (s)', round(dbSeconds, 3), '< 1 s'],
      ['SIGKILL: instance fault rows', faults.length, '>= 1'],
      ['SIGKILL: QMP connections before / after / after restart', `${connectionsBefore} / ${connectionsAfter} / 2`, 'dropped, then reconnected'],
    );
  });

  it(`SIGSTOP: calls time out after command_timeout (${COMMAND_TIMEOUT_S} s), the other guest keeps its latency, served again after SIGCONT`, async () => {
    const load = new PacedLoad(() => caller.call('get_diagnostics', { instance: instB }, { timeoutMs: 10_000 }), 10).start();
    await sleep(3000);
    const tFreeze = load.elapsedMs;
    const pid = a.currentPid() as number;
    process.kill(pid, 'SIGSTOP');
    const frozenCalls = await Promise.all(
      [0, 1, 2].map(async (i) => {
        await sleep(i * 700);
        const t0 = performance.now();
        const err = await caller.call('get_diagnostics', { instance: instA }).then(() => null, (e: unknown) => String(e));
        return { err, seconds: (performance.now() - t0) / 1000 };
      }),
    );
    // Detected once: the liveness ping after the first timeout went unanswered, so a later call fails at once.
    const tLate = performance.now();
    const lateErr = await caller.call('get_diagnostics', { instance: instA }).then(() => null, (e: unknown) => String(e));
    const lateSeconds = (performance.now() - tLate) / 1000;
    const tThaw = load.elapsedMs;
    process.kill(pid, 'SIGCONT');
    const thawed = await waitFor('the thawed guest to be served', () => caller.call('get_diagnostics', { instance: instA }, { timeoutMs: 10_000 }).catch(() => null), 30_000, 200);
    await sleep(1000);
    await load.stop();

    const before = load.samples.filter((s) => s.t < tFreeze && s.outcome === 'ok').map((s) => s.ms);
    const during = load.samples.filter((s) => s.t >= tFreeze && s.t < tThaw);
    const duringMs = during.filter((s) => s.outcome === 'ok').map((s) => s.ms);
    for (const c of frozenCalls) {
      expect(c.err).toMatch(/[Tt]imeout/);
      expect(c.seconds).toBeGreaterThanOrEqual(COMMAND_TIMEOUT_S - 0.1);
      expect(c.seconds).toBeLessThan(COMMAND_TIMEOUT_S + 2);
    }
    expect(lateErr).toMatch(/unresponsive/);
    expect(lateSeconds).toBeLessThan(0.5);
    expect(during.every((s) => s.outcome === 'ok')).toBe(true);
    // No head-of-line blocking: the other guest never waits for the frozen one's timeout.
    expect(Math.max(...duringMs)).toBeLessThan(COMMAND_TIMEOUT_S * 1000 * 0.75);
    expect(thawed).toBeTruthy();
    figures.push(
      ['SIGSTOP: frozen guest\'s calls failed after (s)', frozenCalls.map((c) => round(c.seconds, 2)).join(', '), `command_timeout = ${COMMAND_TIMEOUT_S} s`],
      ['SIGSTOP: a call after the liveness ping went unanswered failed after (s)', round(lateSeconds, 3), '< 0.5 s (no command_timeout)'],
      ['SIGSTOP: other guest p50 / max latency before (ms)', `${round(percentile(before, 0.5))} / ${round(Math.max(...before))}`, ''],
      ['SIGSTOP: other guest p50 / max latency during the freeze (ms)', `${round(percentile(duringMs, 0.5))} / ${round(Math.max(...duringMs))}`, 'unchanged, never the timeout'],
      ['SIGSTOP: served again after SIGCONT', 'yes', 'yes'],
    );
  });
});
