// Promise 1: the broker restarts under load. The private RabbitMQ node is stopped and started
// (`rabbitmqctl stop_app` / `start_app`) while a caller sends ~500 calls/s to novamon-compute; novamon
// reconnects with backoff and jitter, re-declares its (vanished, non-durable) queues and consumes again
// within 5 s of the broker's return, without crashing; a cast delivered again with the same `_unique_id`
// after the reconnect is not executed twice; with amqp_durable_queues a cast published while novamon was
// down is executed once when it comes back.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../../src/db/knex.js';
import { contextToMessage } from '../../src/rpc/context.js';
import { encodeEnvelope } from '../../src/rpc/envelope.js';
import { attachPrivatePostgres } from '../fixtures/private-postgres.js';
import { attachPrivateRabbit, type PrivateRabbit } from '../fixtures/private-rabbit.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { Caller, ComputeProcess, createTestDatabase, instanceArg, openTestDb, PacedLoad, round, uniqueName, waitFor, writeComputeConfig, writeReport } from './harness.js';

const pgInfo = inject('privatePostgres');
const rabbitInfo = inject('privateRabbit');
const RATE = Number(process.env['RESILIENCE_RABBIT_RATE'] ?? 500);

/** An oslo cast body with a fixed `_unique_id`, so the same message can be delivered twice. */
function castBody(method: string, args: Record<string, unknown>, requestId: string, uniqueId: string): Buffer {
  return encodeEnvelope({ method, args, version: '6.0', _unique_id: uniqueId, ...contextToMessage({ requestId }) });
}

describe.runIf(pgInfo && rabbitInfo)('resilience: RabbitMQ restart under load', () => {
  const host = uniqueName('res_mq_host');
  const durableHost = uniqueName('res_mq_durable');
  const exchange = uniqueName('res_mq');
  // Its own exchange too: a durable one cannot be declared over the non-durable one of the first service.
  const durableExchange = uniqueName('res_mq_durable');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'novamon-res-mq-'));
  const instancesPath = path.join(dir, 'instances');
  const id = 0x5200 + Math.floor(Math.random() * 0xff);
  let rabbit: PrivateRabbit;
  let dbUrl: string;
  let guest: FixtureGuest;
  let compute: ComputeProcess | null = null;
  let caller: Caller;
  let db: Database;
  let instance: Record<string, unknown>;

  const actionsFor = async (requestId: string) => (await db.knex('instance_actions').where({ request_id: requestId })) as Array<Record<string, unknown>>;
  /** A short-lived connection of its own: the broker restart closes every connection. */
  const withRaw = async <T>(fn: (c: ChannelModel) => Promise<T>): Promise<T> => {
    const c = await connect(`amqp://guest:guest@127.0.0.1:${rabbit.port}`);
    try {
      return await fn(c);
    } finally {
      await c.close().catch(() => undefined);
    }
  };
  const publishRaw = (routingKey: string, body: Buffer, toExchange = exchange) => withRaw(async (raw) => {
    const ch = await raw.createConfirmChannel();
    await new Promise<void>((resolve, reject) =>
      ch.publish(toExchange, routingKey, body, { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {} }, (err: unknown) => (err ? reject(err as Error) : resolve())),
    );
    await ch.close();
  });
  const dropSharedTopology = () => withRaw(async (raw) => {
    // The topic queue and fanout exchange are named after the topic alone; a durable server cannot declare
    // them over the non-durable ones the first service left, exactly as with oslo.
    const ch = await raw.createChannel();
    await ch.deleteQueue('compute');
    await ch.deleteQueue(`compute.${durableHost}`);
    await ch.deleteExchange('compute_fanout');
    await ch.deleteExchange(durableExchange);
    await ch.close();
  });

  beforeAll(async () => {
    rabbit = attachPrivateRabbit(rabbitInfo!);
    dbUrl = await createTestDatabase(attachPrivatePostgres(pgInfo!).url, uniqueName('res_mq'));
    db = await openTestDb(dbUrl);
    guest = await startFixtureGuest({ instancesPath, name: `instance-${id.toString(16).padStart(8, '0')}` });
    instance = instanceArg(guest, id, host);
    const configFile = writeComputeConfig(path.join(dir, 'a'), { host, exchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state-a'), instancesPath });
    compute = await ComputeProcess.start(configFile);
    caller = new Caller(rabbit.url, exchange, host, 5000);
  });

  afterAll(async () => {
    await compute?.stop();
    await caller?.close();
    await dropSharedTopology().catch(() => undefined);
    await db?.close();
    await killAllFixtureGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`reconnects and consumes again within 5 s of the broker's return, ${RATE} calls/s, no duplicate cast`, async () => {
    // Warm-up: the instance row exists and the caller's reply queue is declared.
    await caller.call('get_diagnostics', { instance }, { timeoutMs: 60_000 });
    const castReq = `req-${uniqueName('cast')}`;
    const cast = castBody('pause_instance', { instance }, castReq, uniqueName('uid').replace(/_/g, ''));
    await publishRaw(`compute.${host}`, cast);
    await waitFor('the cast to run once', async () => (await actionsFor(castReq)).length === 1, 30_000, 100);

    const load = new PacedLoad(() => caller.call('get_host_uptime', {}, { timeoutMs: 5000 }), RATE).start();
    await sleep(3000);
    const tDown = load.elapsedMs;
    await rabbit.stopApp();
    await sleep(2000);
    await rabbit.startApp();
    await rabbit.waitListening();
    const tBack = load.elapsedMs;
    const backWall = Date.now();
    // The same cast again, as a redelivery after the reconnect would bring it.
    await waitFor('novamon to consume again', () => compute!.count(/AMQP connected/) >= 2, 30_000);
    await sleep(1000);
    await publishRaw(`compute.${host}`, cast);
    await sleep(7000);
    await load.stop();

    const summary = load.summary();
    // The first call sent after the broker listens again that novamon answered: the caller's own reconnect included.
    const firstOkAfter = load.samples.filter((s) => s.outcome === 'ok' && s.t >= tBack).sort((a, b) => a.t + a.ms - (b.t + b.ms))[0];
    const recoverySeconds = firstOkAfter ? (firstOkAfter.t + firstOkAfter.ms - tBack) / 1000 : Infinity;
    const reconnectLine = compute!.lines.filter((l) => l.msg === 'AMQP connected').at(-1);
    const reconnectSeconds = reconnectLine ? ((reconnectLine['time'] as number) - backWall) / 1000 : Infinity;
    const okAfter = load.samples.filter((s) => s.outcome === 'ok' && s.t > tBack + 5000).length;
    const sentAfter = load.samples.filter((s) => s.t > tBack + 5000).length;

    expect(compute!.alive).toBe(true);
    expect(recoverySeconds).toBeLessThan(5);
    // Once recovered, the service keeps up with the load again.
    expect(okAfter).toBeGreaterThan(sentAfter * 0.95);
    const actions = await actionsFor(castReq);
    expect(actions).toHaveLength(1);
    const events = await db.knex('instance_actions_events').where({ action_id: actions[0]?.['id'] });
    expect(events).toHaveLength(1);
    expect(compute!.count(/duplicate RPC message/)).toBeGreaterThanOrEqual(1);

    writeReport('1-rabbit-restart', {
      promise: '1. RabbitMQ restart under load',
      figures: [
        ['load (calls/s, get_host_uptime)', RATE, '~500'],
        ['broker down (s, stop_app issued to listening again)', round((tBack - tDown) / 1000), ''],
        ['novamon reconnected after the broker returned (s)', round(reconnectSeconds, 2), '< 5 s'],
        ['first call answered after the broker returned (s)', round(recoverySeconds, 2), '< 5 s'],
        ['calls answered / failed / timed out (caller side)', `${summary.answered} / ${summary.failed} / ${summary.timedOut}`, 'failures only while the broker is down'],
        ['latency p50 / p99 (ms) over the whole run', `${summary.p50Ms} / ${summary.p99Ms}`, ''],
        ['cast delivered twice (same _unique_id, across the reconnect): executions', actions.length, '1'],
        ['crashes', compute!.alive ? 0 : 1, '0'],
      ],
      details: { summary, tDown, tBack },
    });
  });

  it('with amqp_durable_queues a cast published while novamon was down runs once when it returns', async () => {
    await compute!.stop();
    compute = null;
    await dropSharedTopology();
    const configFile = writeComputeConfig(path.join(dir, 'b'), {
      host: durableHost, exchange: durableExchange, transportUrl: rabbit.url, dbUrl, statePath: path.join(dir, 'state-b'), instancesPath, durableQueues: true,
    });
    compute = await ComputeProcess.start(configFile); // declares the durable queues
    await compute.stop();
    compute = null;
    const durableInstance = instanceArg(guest, id, durableHost);
    const requestId = `req-${uniqueName('durable')}`;
    await publishRaw(`compute.${durableHost}`, castBody('unpause_instance', { instance: durableInstance }, requestId, uniqueName('uid').replace(/_/g, '')), durableExchange);
    compute = await ComputeProcess.start(configFile);
    await waitFor('the cast published while novamon was down', async () => (await actionsFor(requestId)).length === 1, 30_000, 100);
    await sleep(2000);
    expect(await actionsFor(requestId)).toHaveLength(1);
  });
});
