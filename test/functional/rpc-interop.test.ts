// The real Python oslo.messaging (Debian's python3-oslo.messaging, python3-nova) against our wire layer:
// its RPCClient calls and casts our RpcServer, and our RpcClient calls its RPC server.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InstanceNotFound } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient } from '../../src/rpc/client.js';
import { type RequestContext } from '../../src/rpc/context.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { RemoteError } from '../../src/rpc/failure.js';
import { RpcServer } from '../../src/rpc/server.js';
import { RABBIT_URL, RawRabbit, sleep, uniqueName } from './interop/rabbit.js';

const PYTHON = '/usr/bin/python3';
const here = (f: string): string => fileURLToPath(new URL(`./interop/${f}`, import.meta.url));
const UUID = '11111111-2222-3333-4444-555555555555';

/** python3 with oslo.messaging and nova importable; apt may still be installing them, so poll a little. */
async function pythonReady(): Promise<boolean> {
  for (let i = 0; i < 30; i++) {
    const r = spawnSync(PYTHON, ['-c', 'import oslo_messaging, nova.exception'], { timeout: 30000 });
    if (r.status === 0) return true;
    await sleep(2000);
  }
  return false;
}

interface PyOutcome {
  ok: boolean;
  result?: unknown;
  type?: string;
  base_class?: string;
  base_module?: string;
  is_nova_exception?: boolean;
  is_instance_not_found?: boolean;
  is_remote_error?: boolean;
  is_timeout?: boolean;
  exc_type?: string | null;
  kwargs?: Record<string, unknown>;
  message?: string;
}

function runPythonClient(spec: Record<string, unknown>): Promise<PyOutcome[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [here('oslo_client.py'), JSON.stringify(spec)], { timeout: 60000 });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => {
      if (code !== 0) return reject(new Error(`oslo_client.py exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as PyOutcome[]);
      } catch {
        reject(new Error(`oslo_client.py printed no JSON: ${out} ${err.slice(-2000)}`));
      }
    });
  });
}

class InteropEndpoint implements RpcEndpoint {
  readonly casts: Array<Record<string, unknown>> = [];
  constructor(readonly version: string) {}
  hasMethod(m: string): boolean {
    return ['get_console_output', 'get_instance_diagnostics', 'stop_instance'].includes(m);
  }
  handle(m: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> | undefined {
    switch (m) {
      case 'get_console_output':
        return Promise.resolve({ text: 'line1\nline2\n', tail: args['tail_length'], user: ctx.userId, request: ctx.requestId, served: this.version });
      case 'get_instance_diagnostics': {
        const inst = args['instance'] as { uuid?: string } | undefined;
        return Promise.reject(new InstanceNotFound(String(inst?.uuid)));
      }
      case 'stop_instance':
        this.casts.push(args);
        return Promise.resolve(null);
      default:
        return undefined;
    }
  }
}

const ready = await pythonReady();
const log = silentLogger();

// The interop suites must run, never skip: CI installs python3-oslo.messaging and python3-nova.
it('has Python oslo.messaging and nova importable (scripts/ensure-services.sh installs them)', () => {
  expect(ready).toBe(true);
});

describe.runIf(ready)('interop: Python oslo.messaging client -> our RpcServer', () => {
  const exchange = uniqueName('novamon_test');
  const topic = uniqueName('compute_i');
  const host = 'host1';
  const ep6 = new InteropEndpoint('6.1');
  const ep5 = new InteropEndpoint('5.13');
  let conn: AmqpConnectionManager;
  let server: RpcServer;
  let results: PyOutcome[];

  beforeAll(async () => {
    conn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log });
    server = new RpcServer({ connection: conn, exchange, topic, server: host, dispatcher: new RpcDispatcher([ep6, ep5]), prefetch: 8, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60000, logger: log });
    await server.start();
    const instance = { uuid: UUID, id: 10, host };
    // One Python process for all operations: importing oslo and nova costs seconds.
    results = await runPythonClient({
      url: RABBIT_URL,
      exchange,
      topic,
      server: host,
      ops: [
        { kind: 'call', method: 'get_console_output', args: { instance, tail_length: 5 }, version: '6.0' },
        { kind: 'call', method: 'get_instance_diagnostics', args: { instance }, version: '6.0' },
        { kind: 'call', method: 'get_console_output', args: { instance, tail_length: 1 }, version: '7.0' },
        { kind: 'call', method: 'no_such_method', args: { instance }, version: '6.0' },
        { kind: 'cast', method: 'stop_instance', args: { instance, clean_shutdown: true }, version: '6.0' },
        { kind: 'call', method: 'get_console_output', args: { instance, tail_length: 2 }, version: '5.0' },
        { kind: 'cast', method: 'stop_instance', args: { instance, clean_shutdown: false }, version: '6.0', fanout: true },
      ],
    });
  });

  afterAll(async () => {
    await server?.stop();
    const raw = await RawRabbit.open();
    await raw.deleteQueues(server.queues.topic, server.queues.server, server.queues.fanout);
    await raw.deleteExchanges(exchange, server.queues.fanoutExchange);
    await raw.close();
    await conn?.close();
  });

  it('gets the result of a call, with its context delivered', () => {
    expect(results[0]).toEqual({ ok: true, result: { text: 'line1\nline2\n', tail: 5, user: 'u1', request: 'req-interop', served: '6.1' } });
    expect(results[5]).toMatchObject({ ok: true, result: { tail: 2, served: '5.13' } });
  });

  it('re-raises our InstanceNotFound as nova.exception.InstanceNotFound with its kwargs', () => {
    expect(results[1]).toMatchObject({
      ok: false,
      base_class: 'InstanceNotFound',
      base_module: 'nova.exception',
      is_instance_not_found: true,
      is_nova_exception: true,
      kwargs: { instance_id: UUID },
      message: `Instance ${UUID} could not be found.`,
    });
  });

  it('sees UnsupportedVersion and NoSuchMethod as oslo reports them', () => {
    // Nova allows only nova.exception, so oslo's own dispatcher errors arrive as RemoteError naming the class.
    expect(results[2]).toMatchObject({ ok: false, is_remote_error: true, exc_type: 'UnsupportedVersion' });
    expect(results[2]?.message).toContain('Endpoint does not support RPC version 7.0. Attempted method: get_console_output');
    expect(results[3]).toMatchObject({ ok: false, is_remote_error: true, exc_type: 'NoSuchMethod' });
    expect(results[3]?.message).toContain('Endpoint does not support RPC method no_such_method');
  });

  it('delivers its casts, direct and fanout', async () => {
    for (let i = 0; i < 100 && ep6.casts.length < 2; i++) await sleep(20);
    expect(ep6.casts).toEqual([
      { instance: { uuid: UUID, id: 10, host }, clean_shutdown: true },
      { instance: { uuid: UUID, id: 10, host }, clean_shutdown: false },
    ]);
  });
});

describe.runIf(ready)('interop: our RpcClient -> Python oslo.messaging RPC server', () => {
  const exchange = uniqueName('novamon_test');
  const topic = uniqueName('compute_p');
  const host = 'pyhost';
  let py: ChildProcessWithoutNullStreams;
  let conn: AmqpConnectionManager;
  let client: RpcClient;
  const target = { topic, server: host, version: '6.0' };
  const ctx = { userId: 'u9', projectId: 'p9', isAdmin: false, roles: ['member'], requestId: 'req-ts' };

  beforeAll(async () => {
    py = spawn(PYTHON, [here('oslo_server.py'), JSON.stringify({ url: RABBIT_URL, exchange, topic, server: host })]);
    let stderr = '';
    py.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`oslo_server.py not ready: ${stderr.slice(-2000)}`)), 60000);
      py.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('READY')) {
          clearTimeout(timer);
          resolve();
        }
      });
      py.on('exit', (code) => reject(new Error(`oslo_server.py exited ${code}: ${stderr.slice(-2000)}`)));
    });
    conn = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: log });
    client = new RpcClient({ connection: conn, exchange, timeoutMs: 5000, logger: log, transientQueueTtlMs: 60000 });
  });

  afterAll(async () => {
    await client?.close();
    if (py && py.exitCode === null) {
      py.stdin.end();
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          py.kill('SIGKILL');
          r();
        }, 15000);
        py.on('exit', () => {
          clearTimeout(t);
          r();
        });
      });
    }
    const raw = await RawRabbit.open();
    await raw.deleteQueues(topic, `${topic}.${host}`);
    await raw.deleteExchanges(exchange);
    await raw.close();
    await conn?.close();
  });

  it('calls and gets the result, with our context on the Python side', async () => {
    expect(await client.call(target, ctx, 'echo', { a: [1, 'ü'], b: null })).toEqual({ args: { a: [1, 'ü'], b: null }, user_id: 'u9', request_id: 'req-ts' });
  });

  it('gets a Nova exception back as RemoteError with class, module and kwargs', async () => {
    const err = (await client.call(target, ctx, 'fail_not_found', { uuid: UUID }).catch((e: unknown) => e)) as RemoteError;
    expect(err).toBeInstanceOf(RemoteError);
    expect(err).toMatchObject({ excType: 'InstanceNotFound', module: 'nova.exception', value: `Instance ${UUID} could not be found.` });
    expect(err.kwargs['instance_id']).toBe(UUID);
  });

  it('gets oslo dispatcher failures for unknown methods and versions', async () => {
    await expect(client.call(target, ctx, 'nope', {})).rejects.toMatchObject({ excType: 'NoSuchMethod', module: 'oslo_messaging.rpc.dispatcher' });
    await expect(client.call({ ...target, version: '7.0' }, ctx, 'echo', {})).rejects.toMatchObject({ excType: 'UnsupportedVersion' });
  });

  it('casts, and the Python server sees the cast', async () => {
    await client.cast(target, ctx, 'record', { n: 1 });
    await client.cast({ topic, version: '6.0', fanout: true }, ctx, 'record', { n: 2 });
    let casts: unknown = [];
    for (let i = 0; i < 50; i++) {
      casts = await client.call(target, ctx, 'get_casts', {});
      if (Array.isArray(casts) && casts.length >= 2) break;
      await sleep(50);
    }
    expect(casts).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }]));
  });
});
