// Connection loss: the broker closes our connection (rabbitmqctl close_connection, as an operator or a
// broker failover would); the manager reconnects, the server re-declares and consumes again, the client
// re-declares its reply queue, and calls work again without anyone restarting anything.
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient } from '../../src/rpc/client.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { RpcServer } from '../../src/rpc/server.js';
import { RABBIT_URL, RawRabbit, sleep, uniqueName } from './interop/rabbit.js';

const canControl = spawnSync('rabbitmqctl', ['-q', 'list_connections', 'pid'], { timeout: 30000 }).status === 0;

/** Close every broker connection whose client properties carry `name`. */
function closeConnectionsNamed(name: string): number {
  const out = execFileSync('rabbitmqctl', ['-q', 'list_connections', 'pid', 'client_properties'], { timeout: 30000 }).toString();
  let n = 0;
  for (const line of out.split('\n')) {
    if (!line.includes(name)) continue;
    const pid = /^(<[^>]+>)/.exec(line.trim())?.[1];
    if (!pid) continue;
    execFileSync('rabbitmqctl', ['-q', 'close_connection', pid, 'novamon test: simulated failure'], { timeout: 30000 });
    n++;
  }
  return n;
}

const echo: RpcEndpoint = {
  version: '6.1',
  hasMethod: (m) => m === 'echo',
  handle: (_m, _ctx, args) => Promise.resolve(args),
};

it('can list RabbitMQ connections with rabbitmqctl', () => {
  expect(canControl).toBe(true);
});

describe.runIf(canControl)('rpc: reconnect after the broker drops the connection', () => {
  const name = uniqueName('novamon_conn');
  const exchange = uniqueName('novamon_test');
  const topic = uniqueName('compute_r');
  const log = silentLogger();
  let conn: AmqpConnectionManager;
  let server: RpcServer;
  let client: RpcClient;

  beforeAll(async () => {
    conn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log, connectionName: name, retryIntervalMs: 200, retryBackoffMs: 200, intervalMaxMs: 1000 });
    server = new RpcServer({ connection: conn, exchange, topic, server: 'h', dispatcher: new RpcDispatcher([echo]), prefetch: 4, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60000, logger: log });
    await server.start();
    client = new RpcClient({ connection: conn, exchange, timeoutMs: 3000, logger: log, transientQueueTtlMs: 60000 });
  });

  afterAll(async () => {
    await server?.stop();
    await client?.close();
    const raw = await RawRabbit.open();
    await raw.deleteQueues(server.queues.topic, server.queues.server, server.queues.fanout, client.replyQueue);
    await raw.deleteExchanges(exchange, server.queues.fanoutExchange);
    await raw.close();
    await conn?.close();
  });

  it('serves calls again after the connection is closed by the broker', async () => {
    expect(await client.call({ topic, version: '6.0' }, {}, 'echo', { n: 1 })).toEqual({ n: 1 });
    const events: string[] = [];
    conn.on('disconnected', () => events.push('disconnected'));
    conn.on('connected', () => events.push('connected'));
    expect(closeConnectionsNamed(name)).toBe(1);
    for (let i = 0; i < 100 && !events.includes('connected'); i++) await sleep(50);
    expect(events).toEqual(['disconnected', 'connected']);
    // The owners re-open their channels on 'connected'; give them a moment, then call through both.
    let result: unknown;
    for (let i = 0; i < 20; i++) {
      result = await client.call({ topic, server: 'h', version: '6.0' }, {}, 'echo', { n: 2 }, { timeoutMs: 1000 }).catch((e: unknown) => e);
      if (!(result instanceof Error)) break;
      await sleep(100);
    }
    expect(result).toEqual({ n: 2 });
  });
});
