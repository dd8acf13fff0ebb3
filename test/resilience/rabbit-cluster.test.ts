// Promise 7: a RabbitMQ cluster loses a node and nothing else. Three private nodes clustered by the test
// (test/fixtures/private-rabbit-cluster.ts); novamon-compute's transport_url lists all three and
// rabbit_quorum_queue makes its topic queues quorum queues, replicated on every node. Under ~200 calls/s
// and with durable casts in flight, the node novamon is connected to is stopped (`stop_app`): every call
// ends answered or with an error the caller sees, every cast runs exactly once, and novamon consumes again
// from another node within 5 s. The node comes back, and then the node novamon moved to is killed (SIGKILL).

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import type { Database } from '../../src/db/knex.js';
import { contextToMessage } from '../../src/rpc/context.js';
import { encodeEnvelope } from '../../src/rpc/envelope.js';
import { attachPrivatePostgres } from '../fixtures/private-postgres.js';
import { canRunPrivateRabbit, type PrivateRabbit } from '../fixtures/private-rabbit.js';
import { startPrivateRabbitCluster, type PrivateRabbitCluster } from '../fixtures/private-rabbit-cluster.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, openTestDb, PacedLoad, round, uniqueName, waitFor, writeComputeConfig, writeReport, type LogLine } from './harness.js';

const pgInfo = inject('privatePostgres');
const RATE = Number(process.env['RESILIENCE_CLUSTER_RATE'] ?? 200);
const CAST_EVERY_MS = 50;

/** Publishes durable casts (confirmed, delivery_mode 2) through one node, each with its own request id. */
class CastPublisher {
  readonly requestIds: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending = new Set<Promise<void>>();
  errors = 0;

  private constructor(
    private readonly close: () => Promise<void>,
    private readonly publish: (body: Buffer) => Promise<void>,
  ) {}

  static async through(node: PrivateRabbit, exchange: string, host: string): Promise<CastPublisher> {
    const conn = await connect(`amqp://guest:guest@127.0.0.1:${node.port}`);
    const ch = await conn.createConfirmChannel();
    return new CastPublisher(
      () => conn.close().catch(() => undefined),
      (body) =>
        new Promise<void>((resolve, reject) =>
          ch.publish(exchange, `compute.${host}`, body, { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {} }, (err: unknown) => (err ? reject(err as Error) : resolve())),
        ),
    );
  }

  start(instance: Record<string, unknown>): this {
    this.timer = setInterval(() => {
      const requestId = `req-${uniqueName('cast')}`;
      const body = encodeEnvelope({ method: 'pause_instance', args: { instance }, version: '6.0', _unique_id: uniqueName('u').replace(/_/g, ''), ...contextToMessage({ requestId }) });
      const p = this.publish(body).then(
        () => void this.requestIds.push(requestId),
        () => void this.errors++,
      );
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }, CAST_EVERY_MS);
    return this;
  }

  /** Stops publishing; only casts the broker confirmed count as sent. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.pending]);
    await this.close();
  }
}

describe.runIf(pgInfo && canRunPrivateRabbit())('resilience: a RabbitMQ cluster loses a node', () => {
  const host = uniqueName('res_cluster_host');
  const exchange = uniqueName('res_cluster');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-cluster-'));
  const id = 0x5300 + Math.floor(Math.random() * 0xff);
  const instance = instanceArg({ uuid: '6a1c0d3e-7b2f-4c55-8e0a-1f2e3d4c5b6a' }, id, host);
  let cluster: PrivateRabbitCluster;
  let clusterStartS = 0;
  let compute: ComputeProcess;
  let caller: Caller;
  let db: Database;

  /** The node novamon-compute is connected to now, from its last 'AMQP connected' line. */
  const currentNode = (): PrivateRabbit => {
    const line = compute.lines.filter((l) => l.msg === 'AMQP connected').at(-1);
    return cluster.byPort(Number(String(line?.['host']).split(':').pop()));
  };
  const lineTime = (l: LogLine | undefined) => (l ? (l['time'] as number) : NaN);

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startPrivateRabbitCluster(3);
    clusterStartS = (Date.now() - t0) / 1000;
    const dbUrl = await createTestDatabase(attachPrivatePostgres(pgInfo!).url, uniqueName('res_cluster'));
    db = await openTestDb(dbUrl);
    const configFile = writeComputeConfig(dir, {
      host, exchange, transportUrl: cluster.url, dbUrl, statePath: path.join(dir, 'state'), instancesPath: path.join(dir, 'instances'),
      extra: '[oslo_messaging_rabbit]\nrabbit_quorum_queue = true\n',
    });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(cluster.url, exchange, host, 5000, { durableQueues: true, quorumQueues: true });
  });

  afterAll(async () => {
    await compute?.stop();
    await caller?.close();
    await db?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Takes away the node novamon is on (`how`), with casts published through another node, and measures
   * from the moment novamon lost its connection to the moment its server consumed again.
   */
  async function loseNode(how: 'stop_app' | 'SIGKILL'): Promise<{ node: string; lostAt: number; recoveryS: number; movedTo: string; casts: CastPublisher }> {
    const node = currentNode();
    const via = cluster.nodes.find((n) => n !== node) as PrivateRabbit;
    const casts = (await CastPublisher.through(via, exchange, host)).start(instance);
    await sleep(1500);
    const from = compute.lines.length;
    if (how === 'stop_app') await node.stopApp();
    else node.kill();
    const lost = await compute.waitForLog(/AMQP connection lost/, 30_000, from);
    const consuming = await compute.waitForLog(/RPC server consuming/, 30_000, compute.lines.indexOf(lost));
    await sleep(2000);
    await casts.stop();
    const movedTo = currentNode();
    return { node: node.nodeName, lostAt: lineTime(lost), recoveryS: (lineTime(consuming) - lineTime(lost)) / 1000, movedTo: movedTo.nodeName, casts };
  }

  it(`keeps serving at ${RATE} calls/s when the node it uses stops, then when another is killed`, async () => {
    onTestFailed(() => {
      console.log(compute.raw.filter((l) => !l.includes('"level":30,') || /AMQP|consuming|RPC server/.test(l)).slice(-60).join('\n'));
      console.log(`caller:\n${caller.logLines.slice(-40).join('\n')}`);
    });
    await caller.call('get_host_uptime', {}, { timeoutMs: 30_000 });
    const load = new PacedLoad(() => caller.call('get_host_uptime', {}, { timeoutMs: 5000 }), RATE).start();
    const loadStart = Date.now();
    // The CLI takes seconds to start on a loaded host: it runs while the load warms up.
    const queues = JSON.parse(await cluster.nodes[0]!.ctl('list_queues name type durable auto_delete --formatter json')) as Array<{ name: string; type: string; durable: boolean; auto_delete: boolean }>;
    for (const name of ['compute', `compute.${host}`]) expect(queues.find((q) => q.name === name)).toMatchObject({ type: 'quorum', durable: true, auto_delete: false });
    const first = await loseNode('stop_app');
    const stopped = cluster.nodes.find((n) => n.nodeName === first.node) as PrivateRabbit;
    const tBack0 = Date.now();
    await stopped.startApp();
    await stopped.waitListening();
    // start_app returns once the broker runs again, its quorum queue members included.
    const backS = (Date.now() - tBack0) / 1000;
    const second = await loseNode('SIGKILL');
    await sleep(3000);
    await load.stop();
    /** From losing the node to the first answer to a call sent after that, as the caller saw it (its own failover included). */
    const servedAgainS = (lostAt: number) => {
      const ends = load.samples.filter((s) => s.outcome === 'ok' && loadStart + s.t > lostAt).map((s) => loadStart + s.t + s.ms);
      return (Math.min(...ends) - lostAt) / 1000;
    };
    const served = [servedAgainS(first.lostAt), servedAgainS(second.lostAt)];

    const requestIds = [...first.casts.requestIds, ...second.casts.requestIds];
    const runs = async () => {
      const actions = (await db.knex('instance_actions').whereIn('request_id', requestIds).select('id', 'request_id')) as Array<{ id: number; request_id: string }>;
      const events = (await db.knex('instance_actions_events').whereIn('action_id', actions.map((a) => a.id)).select('action_id')) as Array<{ action_id: number }>;
      return { actions, events };
    };
    await waitFor('every cast to run', async () => (await runs()).actions.length >= requestIds.length, 60_000, 250);
    await sleep(2000);
    const { actions, events } = await runs();
    const perAction = new Map<number, number>();
    for (const e of events) perAction.set(e.action_id, (perAction.get(e.action_id) ?? 0) + 1);
    const ranTwice = [...perAction.values()].filter((n) => n > 1).length;

    const summary = load.summary();

    writeReport('7-rabbit-cluster', {
      promise: '7. A RabbitMQ node of a three-node cluster lost under load',
      figures: [
        ['cluster of 3 private nodes started and clustered (s)', round(clusterStartS), ''],
        ['topic queues', 'quorum, durable, not auto-delete', 'as oslo declares them under rabbit_quorum_queue'],
        ['load (calls/s, get_host_uptime); casts (pause_instance, durable, confirmed)', `${RATE}; one every ${CAST_EVERY_MS} ms`, '~200'],
        ['stop_app of the node novamon used: connection lost → consuming on another node (s)', round(first.recoveryS, 2), '< 5 s'],
        ['node back (start_app to listening, s)', round(backS, 1), ''],
        ['SIGKILL of the node novamon moved to: connection lost → consuming on another node (s)', round(second.recoveryS, 2), '< 5 s'],
        ['first answer to a call sent after the loss, caller side (s): stop_app; SIGKILL', `${round(served[0]!, 2)}; ${round(served[1]!, 2)}`, 'reported: the caller fails over too, and a quorum queue led from the lost node elects a new leader'],
        ['calls sent / answered / failed / timed out (5 s); p50 / p99 of answered (ms)', `${summary.sent} / ${summary.answered} / ${summary.failed} / ${summary.timedOut}; ${summary.p50Ms} / ${summary.p99Ms}`, 'every call ends, answered or with an error'],
        ['casts confirmed / run once / run twice / never', `${requestIds.length} / ${actions.length - ranTwice} / ${ranTwice} / ${requestIds.length - actions.length}`, 'each exactly once'],
        ['duplicate deliveries suppressed (same _unique_id)', compute.count(/duplicate RPC message/), ''],
        ['crashes', compute.alive ? 0 : 1, '0'],
      ],
      details: { summary, first: { ...first, casts: first.casts.requestIds.length }, second: { ...second, casts: second.casts.requestIds.length } },
    });

    expect(compute.alive).toBe(true);
    expect(first.movedTo).not.toBe(first.node);
    expect(second.movedTo).not.toBe(second.node);
    expect(first.recoveryS).toBeLessThan(5);
    expect(second.recoveryS).toBeLessThan(5);
    expect(summary.answered + summary.failed + summary.timedOut).toBe(summary.sent);
    expect(typeof (await caller.call('get_host_uptime', {}, { timeoutMs: 20_000 }))).toBe('string');
    expect(first.casts.errors + second.casts.errors).toBe(0);
    expect(new Set(actions.map((a) => a.request_id)).size).toBe(requestIds.length);
    expect(actions).toHaveLength(requestIds.length);
    expect(events).toHaveLength(requestIds.length);
    expect(ranTwice).toBe(0);

  });
});
