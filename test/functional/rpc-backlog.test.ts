// A server that starts with calls already waiting in its queue (a restart under load) answers every one
// of them, however fast its handlers are: replies must not depend on the server having finished
// registering all its consumers.
import { afterAll, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient } from '../../src/rpc/client.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { RpcServer } from '../../src/rpc/server.js';
import { RABBIT_URL, uniqueName } from './interop/rabbit.js';

const log = silentLogger();
const exchange = uniqueName('novamon_test');
const topic = uniqueName('compute_b');
const endpoint: RpcEndpoint = { version: '6.1', hasMethod: (m) => m === 'echo', handle: async (_m, _c, args) => args };
const clientConn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log });
const serverConn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log });
const client = new RpcClient({ connection: clientConn, exchange, timeoutMs: 20_000, logger: log });
const opts = { exchange, topic, server: 'host1', prefetch: 64, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60_000, logger: log };
let server: RpcServer | null = null;

afterAll(async () => {
  await server?.stop();
  await client.close();
  await clientConn.close();
  await serverConn.close();
});

it('answers every call that was queued before it started', async () => {
  await clientConn.connect();
  await serverConn.connect();
  // Declare the queues once, then stop: calls published now wait in compute.host1.
  const first = new RpcServer({ ...opts, connection: serverConn, dispatcher: new RpcDispatcher([endpoint]) });
  await first.start();
  await first.stop();
  const calls = Array.from({ length: 200 }, (_, i) => client.call({ topic, server: 'host1', version: '6.0' }, {}, 'echo', { i }));
  await new Promise((r) => setTimeout(r, 500));
  server = new RpcServer({ ...opts, connection: serverConn, dispatcher: new RpcDispatcher([endpoint]) });
  await server.start();
  const answers = await Promise.all(calls);
  expect(answers.map((a) => (a as { i: number }).i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
});
