// Our RpcClient against our RpcServer on the real broker, plus hand-made bodies published raw with amqplib:
// results, failures, dispatcher errors, ordering, dedupe, malformed input, reply properties, stop().
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceNotFound } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { MessagingTimeout, RpcClient } from '../../src/rpc/client.js';
import { type RequestContext } from '../../src/rpc/context.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/rpc/envelope.js';
import { RemoteError } from '../../src/rpc/failure.js';
import { RpcServer, type RpcServerMetric } from '../../src/rpc/server.js';
import { hex, RABBIT_URL, RawRabbit, sleep, uniqueName } from './interop/rabbit.js';

const UUID = '11111111-2222-3333-4444-555555555555';
const sleepFor = (args: Record<string, unknown>): number => (typeof args['ms'] === 'number' ? Math.min(args['ms'], 2000) : 0);

class TestEndpoint implements RpcEndpoint {
  readonly namespace = null;
  runs = new Map<string, number>();
  casts: Array<Record<string, unknown>> = [];
  order: string[] = [];
  private readonly methods: Record<string, (ctx: RequestContext, args: Record<string, unknown>) => Promise<unknown>> = {
    echo: async (ctx, args) => ({ args, userId: ctx.userId, requestId: ctx.requestId, version: this.version }),
    fail: async (_ctx, args) => {
      throw new InstanceNotFound(String(args['uuid']));
    },
    boom: async () => {
      throw new TypeError('secret path /etc/novamon/x');
    },
    record: async (_ctx, args) => {
      this.casts.push(args);
      return null;
    },
    counted: async (_ctx, args) => {
      const id = String(args['id']);
      const n = (this.runs.get(id) ?? 0) + 1;
      this.runs.set(id, n);
      await sleep(sleepFor(args));
      return n;
    },
    ordered: async (_ctx, args) => {
      this.order.push(`start ${String(args['tag'])}`);
      await sleep(sleepFor(args));
      this.order.push(`end ${String(args['tag'])}`);
      return args['tag'];
    },
    unserialisable: async () => ({ n: 1n }),
  };
  constructor(readonly version: string) {}
  hasMethod(m: string): boolean {
    return Object.hasOwn(this.methods, m);
  }
  handle(m: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> | undefined {
    return this.methods[m]?.(ctx, args);
  }
  orderingKey(_m: string, args: Record<string, unknown>): string | null {
    return typeof args['key'] === 'string' ? args['key'] : null;
  }
}

const exchange = uniqueName('novamon_test');
const topic = uniqueName('compute_t');
const host = 'host1';
const log = silentLogger();
const ep6 = new TestEndpoint('6.1');
const ep5 = new TestEndpoint('5.13');
const metrics: RpcServerMetric[] = [];
let conn: AmqpConnectionManager;
let server: RpcServer;
let client: RpcClient;
let raw: RawRabbit;
const target = { topic, server: host, version: '6.0' };
const ctx = { userId: 'u1', projectId: 'p1', isAdmin: true, roles: ['admin'], requestId: 'req-1' };

function rawCall(msg: Record<string, unknown>): Record<string, unknown> {
  return { version: '6.0', _msg_id: hex(), _timeout: null, _unique_id: hex(), _context_user_id: 'u1', ...msg };
}

beforeAll(async () => {
  conn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log, heartbeatSeconds: 10 });
  server = new RpcServer({
    connection: conn,
    exchange,
    topic,
    server: host,
    dispatcher: new RpcDispatcher([ep6, ep5]),
    prefetch: 8,
    durableQueues: false,
    quorumQueues: false,
    transientQueueTtlMs: 60000,
    logger: log,
    maxBodyBytes: 64 * 1024,
    onMetrics: (m) => metrics.push(m),
  });
  await server.start();
  client = new RpcClient({ connection: conn, exchange, timeoutMs: 5000, logger: log, transientQueueTtlMs: 60000 });
  raw = await RawRabbit.open();
});

afterAll(async () => {
  await server?.stop();
  await client?.close();
  const q = server.queues;
  await raw?.deleteQueues(q.topic, q.server, q.fanout);
  await raw?.deleteExchanges(exchange, q.fanoutExchange);
  await raw?.close();
  await conn?.close();
});

describe('rpc: our client and our server on RabbitMQ', () => {
  it('answers a call with the result and the caller context', async () => {
    const r = await client.call(target, ctx, 'echo', { instance: { uuid: UUID }, tail_length: 5 });
    expect(r).toEqual({ args: { instance: { uuid: UUID }, tail_length: 5 }, userId: 'u1', requestId: 'req-1', version: '6.1' });
    // Shared topic queue (no server named) reaches the same server.
    expect(await client.call({ topic, version: '6.1' }, ctx, 'echo', {})).toMatchObject({ version: '6.1' });
  });

  it('routes an older major to the 5.x endpoint', async () => {
    expect(await client.call({ ...target, version: '5.0' }, ctx, 'echo', {})).toMatchObject({ version: '5.13' });
  });

  it('raises a Nova exception as RemoteError with class, module and kwargs', async () => {
    const err = await client.call(target, ctx, 'fail', { uuid: UUID }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ excType: 'InstanceNotFound', module: 'nova.exception', value: `Instance ${UUID} could not be found.`, kwargs: { instance_id: UUID } });
  });

  it('hides unexpected errors behind InternalError', async () => {
    const err = (await client.call(target, ctx, 'boom', {}).catch((e: unknown) => e)) as RemoteError;
    expect(err).toMatchObject({ excType: 'InternalError', module: 'nova.exception' });
    expect(JSON.stringify({ m: err.value, k: err.kwargs, t: err.tb })).not.toContain('/etc/novamon');
    const err2 = (await client.call(target, ctx, 'unserialisable', {}).catch((e: unknown) => e)) as RemoteError;
    expect(err2.excType).toBe('InternalError');
  });

  it('answers unknown methods and versions with oslo dispatcher failures', async () => {
    const nsm = (await client.call(target, ctx, 'no_such_method', {}).catch((e: unknown) => e)) as RemoteError;
    expect(nsm).toMatchObject({ excType: 'NoSuchMethod', module: 'oslo_messaging.rpc.dispatcher', value: 'Endpoint does not support RPC method no_such_method' });
    const uv = (await client.call({ ...target, version: '7.0' }, ctx, 'echo', {}).catch((e: unknown) => e)) as RemoteError;
    expect(uv).toMatchObject({ excType: 'UnsupportedVersion', value: 'Endpoint does not support RPC version 7.0. Attempted method: echo' });
  });

  it('delivers casts, direct and fanout', async () => {
    await client.cast(target, ctx, 'record', { n: 1 });
    await client.cast({ topic, version: '6.0', fanout: true }, ctx, 'record', { n: 2 });
    for (let i = 0; i < 100 && ep6.casts.length < 2; i++) await sleep(20);
    expect(ep6.casts).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }]));
  });

  it('times out a call nobody answers with MessagingTimeout', async () => {
    const t0 = Date.now();
    await expect(client.call({ topic: uniqueName('nobody'), version: '6.0' }, ctx, 'echo', {}, { timeoutMs: 300 })).rejects.toBeInstanceOf(MessagingTimeout);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('after a call times out while its reply queue still delivers, takes a new channel; a call in flight is still answered', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const c = new RpcClient({ connection: conn, exchange, timeoutMs: 10_000, logger });
    try {
      expect(await c.call(target, ctx, 'counted', { id: hex() })).toBe(1);
      const inFlight = c.call(target, ctx, 'counted', { id: hex(), ms: 1500 });
      await expect(c.call({ topic: uniqueName('nobody'), version: '6.0' }, ctx, 'echo', {}, { timeoutMs: 300 })).rejects.toBeInstanceOf(MessagingTimeout);
      for (let i = 0; i < 100 && !lines.some((l) => l.includes('opening a new channel')); i++) await sleep(20);
      expect(lines.some((l) => l.includes('opening a new channel'))).toBe(true);
      // Answered on the new channel, with no other call to open it.
      expect(await inFlight).toBe(1);
      expect(await c.call(target, ctx, 'echo', { after: 'new channel' })).toMatchObject({ args: { after: 'new channel' } });
    } finally {
      await c.close();
    }
  });

  it('runs same-key messages in order and different keys concurrently', async () => {
    ep6.order = [];
    const calls = [
      client.call(target, ctx, 'ordered', { key: 'A', tag: 'a1', ms: 150 }),
      client.call(target, ctx, 'ordered', { key: 'A', tag: 'a2', ms: 1 }),
      client.call(target, ctx, 'ordered', { key: 'B', tag: 'b1', ms: 1 }),
    ];
    expect(await Promise.all(calls)).toEqual(['a1', 'a2', 'b1']);
    const o = ep6.order;
    expect(o.indexOf('end a1')).toBeLessThan(o.indexOf('start a2'));
    expect(o.indexOf('end b1')).toBeLessThan(o.indexOf('end a1'));
  });

  it('runs a duplicated call once and re-sends the cached reply; drops a duplicated cast', async () => {
    const replies = await raw.collector();
    const id = hex();
    const msg = encodeEnvelope(rawCall({ method: 'counted', args: { id, ms: 100 }, _reply_q: replies.name, _unique_id: id }));
    raw.publish(exchange, `${topic}.${host}`, msg, '5000'); // in flight when the copy arrives
    raw.publish(exchange, `${topic}.${host}`, msg, '5000');
    const got = await replies.waitFor(2);
    expect(got).toHaveLength(2);
    for (const m of got) expect(decodeEnvelope(m.content)).toMatchObject({ result: 1, failure: null, ending: true });
    raw.publish(exchange, `${topic}.${host}`, msg, '5000'); // after completion: served from the cache
    expect(await replies.waitFor(3)).toHaveLength(3);
    expect(ep6.runs.get(id)).toBe(1);

    const castId = hex();
    const cast = encodeEnvelope({ method: 'counted', args: { id: castId }, version: '6.0', _unique_id: castId });
    raw.publish(exchange, topic, cast);
    raw.publish(exchange, topic, cast);
    await sleep(300);
    expect(ep6.runs.get(castId)).toBe(1);
  });

  it('sends replies with oslo properties and envelope', async () => {
    const replies = await raw.collector();
    const msgId = hex();
    raw.publish(exchange, `${topic}.${host}`, encodeEnvelope(rawCall({ method: 'echo', args: {}, _reply_q: replies.name, _msg_id: msgId })), '5000');
    const [m] = await replies.waitFor(1);
    expect(m).toBeDefined();
    if (!m) return;
    expect(m.fields.exchange).toBe('');
    expect(m.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {} });
    expect(m.properties.expiration).toBeUndefined();
    const body = m.content.toString();
    expect(body.startsWith('{"oslo.version": "2.0", "oslo.message": "{\\"result\\": ')).toBe(true);
    const d = decodeEnvelope(m.content);
    expect(Object.keys(d)).toEqual(['result', 'failure', 'ending', '_msg_id', '_unique_id']);
    expect(d['_msg_id']).toBe(msgId);
    expect(d['_unique_id']).toMatch(/^[0-9a-f]{32}$/);
  });

  it('survives malformed bodies: failure replies where possible, drops otherwise, keeps consuming', async () => {
    const replies = await raw.collector();
    const rk = `${topic}.${host}`;
    const before = metrics.filter((m) => m.outcome === 'malformed').length;
    raw.publish(exchange, rk, 'not json at all');
    raw.publish(exchange, rk, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    raw.publish(exchange, rk, JSON.stringify({ 'oslo.version': '1.0', 'oslo.message': '{}' }));
    raw.publish(exchange, rk, JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': 'nope{' }));
    const giantId = hex();
    raw.publish(exchange, rk, encodeEnvelope(rawCall({ method: 'echo', args: { pad: 'x'.repeat(70 * 1024) }, _reply_q: replies.name, _msg_id: giantId })));
    raw.publish(exchange, rk, encodeEnvelope({ method: 'echo', args: { pad: 'x'.repeat(70 * 1024) } })); // giant cast: dropped
    raw.publish(exchange, rk, encodeEnvelope({ method: 'echo', args: {} })); // a cast with no _unique_id
    raw.publish(exchange, rk, encodeEnvelope({ args: {} })); // cast without method: dropped
    const bad = [
      rawCall({ method: 'echo', args: [1, 2], _reply_q: replies.name }),
      rawCall({ method: 'echo', _reply_q: replies.name }),
      rawCall({ method: 42, args: {}, _reply_q: replies.name }),
      rawCall({ method: 'echo', args: {}, version: 6, _reply_q: replies.name }),
    ];
    for (const b of bad) raw.publish(exchange, rk, encodeEnvelope(b), '5000');
    const got = await replies.waitFor(bad.length + 1);
    expect(got).toHaveLength(bad.length + 1);
    for (const m of got) {
      const d = decodeEnvelope(m.content);
      expect(d['result']).toBeNull();
      expect(JSON.parse(String(d['failure']))).toMatchObject({ class: 'ValueError', module: 'builtins' });
    }
    const giant = got.map((m) => decodeEnvelope(m.content)).find((d) => d['_msg_id'] === giantId);
    expect(JSON.parse(String(giant?.['failure'])).message).toMatch(/exceeds the 65536 byte limit/);
    // Still serving, and nothing stuck unacked.
    expect(await client.call(target, ctx, 'echo', { after: true })).toMatchObject({ args: { after: true } });
    for (let i = 0; i < 50 && metrics.filter((m) => m.outcome === 'malformed').length - before < 11; i++) await sleep(20);
    expect(metrics.filter((m) => m.outcome === 'malformed').length - before).toBe(11);
    const q = await raw.ch.checkQueue(server.queues.server);
    expect(q.messageCount).toBe(0);
  });

  it('logs and drops a reply to a reply queue that does not exist', async () => {
    raw.publish(exchange, `${topic}.${host}`, encodeEnvelope(rawCall({ method: 'echo', args: {}, _reply_q: uniqueName('reply_gone') })), '5000');
    await sleep(200);
    expect(await client.call(target, ctx, 'echo', { still: 'ok' })).toMatchObject({ args: { still: 'ok' } });
  });

  it('handles a burst of concurrent calls', async () => {
    const n = 200;
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => client.call(target, ctx, 'echo', { i })));
    const ms = performance.now() - t0;
    expect(rs.map((r) => (r as { args: { i: number } }).args.i)).toEqual(Array.from({ length: n }, (_, i) => i));
    // Sequential latency of the hot path (informational bound; the target is ~1 ms p50 on an idle host).
    const lat: number[] = [];
    for (let i = 0; i < 50; i++) {
      const s = performance.now();
      await client.call(target, ctx, 'echo', {});
      lat.push(performance.now() - s);
    }
    lat.sort((a, b) => a - b);
    console.log(`rpc burst: ${n} calls in ${ms.toFixed(1)} ms; sequential p50 ${lat[25]?.toFixed(2)} ms, p90 ${lat[45]?.toFixed(2)} ms`);
    expect(lat[25]).toBeLessThan(50);
  });
});

describe('rpc: server stop', () => {
  it('finishes and answers in-flight calls, then stops consuming', async () => {
    const t = uniqueName('compute_stop');
    const ep = new TestEndpoint('6.1');
    const s = new RpcServer({ connection: conn, exchange, topic: t, server: host, dispatcher: new RpcDispatcher([ep]), prefetch: 4, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60000, logger: log });
    await s.start();
    try {
      const slow = client.call({ topic: t, server: host, version: '6.0' }, ctx, 'counted', { id: 'slow', ms: 300 });
      await sleep(100);
      await s.stop();
      expect(await slow).toBe(1);
      // Not consuming anymore: a new call waits in the queue and times out.
      await expect(client.call({ topic: t, server: host, version: '6.0' }, ctx, 'echo', {}, { timeoutMs: 300 })).rejects.toBeInstanceOf(MessagingTimeout);
    } finally {
      await s.stop();
      await raw.deleteQueues(s.queues.topic, s.queues.server, s.queues.fanout);
      await raw.deleteExchanges(s.queues.fanoutExchange);
    }
  });
});

describe('rpc: durable and quorum topologies', () => {
  it.each([
    ['durable', { durableQueues: true, quorumQueues: false }],
    ['quorum', { durableQueues: true, quorumQueues: true }],
  ])('declares %s queues the broker accepts and serves calls on them', async (_name, flags) => {
    const ex = uniqueName('novamon_test');
    const t = uniqueName('compute_q');
    const ep = new TestEndpoint('6.1');
    const s = new RpcServer({ connection: conn, exchange: ex, topic: t, server: host, dispatcher: new RpcDispatcher([ep]), prefetch: 4, ...flags, transientQueueTtlMs: 60000, logger: log });
    const c = new RpcClient({ connection: conn, exchange: ex, timeoutMs: 5000, logger: log, ...flags });
    try {
      await s.start();
      expect(await c.call({ topic: t, server: host, version: '6.0' }, ctx, 'echo', { q: 1 })).toMatchObject({ args: { q: 1 } });
    } finally {
      await s.stop();
      await c.close();
      await raw.deleteQueues(s.queues.topic, s.queues.server, s.queues.fanout);
      await raw.deleteExchanges(ex, s.queues.fanoutExchange);
    }
  });
});
