// trigger_crash_dump (Nova's action, 2.17) and novamon's screenshot extension through the HTTP pipeline.

import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApiApp } from '../../../src/api/app.js';
import { NoAuth2Authenticator } from '../../../src/api/auth.js';
import { ComputeApi } from '../../../src/api/compute-api.js';
import { silentLogger } from '../../../src/logging.js';
import { RemoteError } from '../../../src/rpc/failure.js';
import { FakeRpc, MemoryStores, instanceRow } from './fakes.js';

const U1 = '11111111-2222-3333-4444-555555555555';
const U2 = '22222222-2222-3333-4444-555555555555';
let stores: MemoryStores;
let rpc: FakeRpc;
let app: FastifyInstance;

beforeEach(async () => {
  stores = new MemoryStores();
  rpc = new FakeRpc();
  stores.add(instanceRow({ uuid: U1 }));
  stores.add(instanceRow({ uuid: U2, id: 2, name: 'instance-00000002', vmState: 'stopped', powerState: 4 }));
  app = await buildApiApp({
    compute: new ComputeApi(stores, rpc, { rpcTimeoutSeconds: 5 }, silentLogger()),
    authenticator: new NoAuth2Authenticator(),
    logger: silentLogger(),
    maxBodyBytes: 2048,
    monitorPassthrough: false,
  });
});

afterEach(async () => {
  await app.close();
});

const action = (id: string, body: unknown, version = 'compute 2.17', token = 'u1:p1') =>
  app.inject({
    method: 'POST',
    url: `/v2.1/servers/${id}/action`,
    headers: { 'x-auth-token': token, 'content-type': 'application/json', 'openstack-api-version': version },
    payload: JSON.stringify(body),
  });

describe('trigger_crash_dump', () => {
  test('2.17: 202, the action recorded, a cast to the instance host', async () => {
    const res = await action(U1, { trigger_crash_dump: null });
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    expect(rpc.sent.map((s) => [s.kind, s.method, s.target.server])).toEqual([['cast', 'trigger_crash_dump', 'host1']]);
    expect(stores.actionRows.map((a) => [a.action, a.requestId])).toEqual([['trigger_crash_dump', res.headers['x-openstack-request-id']]]);
  });

  test('before 2.17 the action does not exist (404), a wrong body is 400', async () => {
    expect((await action(U1, { trigger_crash_dump: null }, 'compute 2.16')).statusCode).toBe(404);
    const bad = await action(U1, { trigger_crash_dump: {} });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().badRequest.message).toContain('Invalid input for field/attribute trigger_crash_dump');
    expect(rpc.sent).toEqual([]);
  });

  test('a stopped server is 409 with Nova\'s message; another project\'s server is 404', async () => {
    const res = await action(U2, { trigger_crash_dump: null });
    expect(res.statusCode).toBe(409);
    expect(res.json().conflictingRequest.message).toBe(`Cannot 'trigger_crash_dump' instance ${U2} while it is in vm_state stopped`);
    expect((await action(U1, { trigger_crash_dump: null }, 'compute 2.17', 'u9:p9')).statusCode).toBe(404);
    expect(rpc.sent).toEqual([]);
  });
});

describe('novamon-screenshot', () => {
  const get = (id: string, token = 'u1:p1') => app.inject({ method: 'GET', url: `/v2.1/servers/${id}/novamon-screenshot`, headers: { 'x-auth-token': token } });

  test('answers the PNG from get_screenshot in the novamon namespace', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    rpc.answer = () => ({ mime_type: 'image/png', width: 1, height: 1, data: png.toString('base64') });
    const res = await get(U1);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.rawPayload.equals(png)).toBe(true);
    expect(rpc.sent.map((s) => [s.method, s.target.namespace, s.target.version])).toEqual([['get_screenshot', 'novamon', '1.0']]);
  });

  test('maps the compute host\'s errors to Nova\'s faults', async () => {
    rpc.answer = () => {
      throw new RemoteError('InstanceNotRunning', 'nova.exception', `Instance ${U1} is not running.`);
    };
    expect((await get(U1)).statusCode).toBe(409);
    rpc.answer = () => {
      throw new RemoteError('ConsoleNotAvailable', 'nova.exception', 'Guest does not have a console available.');
    };
    expect((await get(U1)).statusCode).toBe(404);
    expect((await get(U1, 'u9:p9')).statusCode).toBe(404);
  });
});
