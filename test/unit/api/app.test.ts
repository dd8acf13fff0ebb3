// The HTTP pipeline with fastify's inject(): in-memory repositories and a recording RPC client.

import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApiApp } from '../../../src/api/app.js';
import { KeystoneAuthenticator, NoAuth2Authenticator } from '../../../src/api/auth.js';
import { ComputeApi } from '../../../src/api/compute-api.js';
import { silentLogger } from '../../../src/logging.js';
import { RemoteError } from '../../../src/rpc/failure.js';
import { FakeRpc, MemoryStores, instanceRow } from './fakes.js';

const U1 = '11111111-2222-3333-4444-555555555555';
const U2 = '22222222-2222-3333-4444-555555555555';
let stores: MemoryStores;
let rpc: FakeRpc;
let app: FastifyInstance;

async function build(opts: { passthrough?: boolean } = {}) {
  app = await buildApiApp({
    compute: new ComputeApi(stores, rpc, { rpcTimeoutSeconds: 5 }, silentLogger()),
    authenticator: new NoAuth2Authenticator(),
    logger: silentLogger(),
    maxBodyBytes: 2048,
    monitorPassthrough: opts.passthrough ?? false,
  });
}

const inject = (method: 'GET' | 'POST', url: string, token = 'admin', body?: unknown, headers: Record<string, string> = {}) =>
  app.inject({
    method,
    url,
    headers: { 'x-auth-token': token, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  });

beforeEach(async () => {
  stores = new MemoryStores();
  rpc = new FakeRpc();
  stores.add(instanceRow({ uuid: U1 }));
  stores.add(instanceRow({ uuid: U2, id: 2, name: 'instance-00000002', displayName: 'vm10', projectId: 'p2', userId: 'u2', vmState: 'stopped', powerState: 4 }));
  await build();
});

afterEach(async () => {
  await app.close();
});

describe('servers', () => {
  test('list is scoped to the token\'s project, admins included, unless all_tenants', async () => {
    const mine = (await inject('GET', '/v2.1/servers', 'u1:p1')).json();
    expect(mine.servers.map((s: { id: string }) => s.id)).toEqual([U1]);
    expect((await inject('GET', '/v2.1/servers')).json()).toEqual({ servers: [] });
    const all = (await inject('GET', '/v2.1/servers?all_tenants')).json();
    expect(all.servers).toHaveLength(2);
    expect((await inject('GET', '/v2.1/servers?all_tenants=maybe')).statusCode).toBe(400);
    const denied = await inject('GET', '/v2.1/servers/detail?all_tenants=1', 'u1:p1');
    expect(denied.json()).toEqual({ forbidden: { code: 403, message: "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed." } });
  });

  test('the name filter is an unanchored regex (vm1 matches vm10)', async () => {
    const r = (await inject('GET', '/v2.1/servers?all_tenants=1&name=vm1')).json();
    expect(r.servers.map((s: { name: string }) => s.name).sort()).toEqual(['vm1', 'vm10']);
  });

  test('show: views per microversion and role', async () => {
    const member = (await inject('GET', `/v2.1/servers/${U1}`, 'u1:p1')).json().server;
    expect(member).toMatchObject({ id: U1, name: 'vm1', status: 'ACTIVE', 'OS-EXT-STS:power_state': 1, 'OS-SRV-USG:launched_at': '2024-01-02T03:04:05.678000' });
    expect(member).not.toHaveProperty('OS-EXT-SRV-ATTR:host');
    expect(member).not.toHaveProperty('locked');
    expect(member.flavor).toHaveProperty('id');
    const admin = (await inject('GET', `/v2.1/servers/${U1}`, 'admin', undefined, { 'openstack-api-version': 'compute 2.73' })).json().server;
    expect(admin).toMatchObject({ 'OS-EXT-SRV-ATTR:host': 'host1', locked: false, locked_reason: null, tags: [], description: null, server_groups: [], host_status: 'UNKNOWN' });
    expect(admin.flavor).not.toHaveProperty('id');
    expect(admin.hostId).toMatch(/^[0-9a-f]{56}$/);
  });

  test('another project\'s server is 404 before any policy check', async () => {
    expect((await inject('GET', `/v2.1/servers/${U2}`, 'u1:p1')).statusCode).toBe(404);
    expect((await inject('GET', `/v2.1/servers/${U2}/diagnostics`, 'u1:p1')).statusCode).toBe(404);
  });
});

describe('actions', () => {
  test('os-stop checks state, sets task_state, records the action and casts to the host', async () => {
    const r = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-stop': null });
    expect(r.statusCode).toBe(202);
    expect(r.body).toBe('');
    const requestId = r.headers['x-openstack-request-id'];
    expect(stores.rows.get(U1)?.taskState).toBe('powering-off');
    expect(stores.actionRows[0]).toMatchObject({ action: 'stop', requestId, userId: 'u1', projectId: 'p1' });
    expect(rpc.sent).toHaveLength(1);
    const sent = rpc.sent[0]!;
    expect(sent).toMatchObject({ kind: 'cast', method: 'stop_instance', target: { topic: 'compute', server: 'host1', version: '6.0' } });
    expect(sent.ctx.requestId).toBe(requestId);
    expect(sent.args['clean_shutdown']).toBe(true);
    expect((sent.args['instance'] as Record<string, Record<string, unknown>>)['nova_object.data']).toMatchObject({ uuid: U1, id: 1, host: 'host1', task_state: 'powering-off' });
    const again = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-stop': null });
    expect(again.json()).toEqual({ conflictingRequest: { code: 409, message: `Cannot 'stop' instance ${U1} while it is in task_state powering-off` } });
  });

  test('start from active is 409 on vm_state; hard reboot is allowed from stopped', async () => {
    const r = await inject('POST', `/v2.1/servers/${U1}/action`, 'admin', { 'os-start': null });
    expect(r.json()).toEqual({ conflictingRequest: { code: 409, message: `Cannot 'start' instance ${U1} while it is in vm_state active` } });
    expect((await inject('POST', `/v2.1/servers/${U2}/action`, 'admin', { reboot: { type: 'SOFT' } })).statusCode).toBe(409);
    expect((await inject('POST', `/v2.1/servers/${U2}/action`, 'admin', { reboot: { type: 'hard' } })).statusCode).toBe(202);
    expect(rpc.sent[0]?.args['reboot_type']).toBe('HARD');
    expect(stores.rows.get(U2)?.taskState).toBe('rebooting_hard');
  });

  test('console output: length passed through, control characters stripped', async () => {
    rpc.answer = () => 'a\x00b\x1b[0m\nline2\n';
    const r = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getConsoleOutput': { length: '5' } });
    expect(r.json()).toEqual({ output: 'ab[0m\nline2\n' });
    expect(rpc.sent[0]).toMatchObject({ kind: 'call', method: 'get_console_output', args: { tail_length: '5' } });
  });

  test('os-getVNCConsole up to 2.5, remote-consoles from 2.6', async () => {
    rpc.answer = () => ({ access_url: 'http://proxy/vnc_auto.html?path=%3Ftoken%3Dabc' });
    const old = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getVNCConsole': { type: 'novnc' } });
    expect(old.json()).toEqual({ console: { type: 'novnc', url: 'http://proxy/vnc_auto.html?path=%3Ftoken%3Dabc' } });
    const gone = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getVNCConsole': { type: 'novnc' } }, { 'openstack-api-version': 'compute 2.6' });
    expect(gone.statusCode).toBe(404);
    const rc = await inject('POST', `/v2.1/servers/${U1}/remote-consoles`, 'u1:p1', { remote_console: { protocol: 'vnc', type: 'novnc' } }, { 'openstack-api-version': 'compute 2.8' });
    expect(rc.json()).toEqual({ remote_console: { protocol: 'vnc', type: 'novnc', url: 'http://proxy/vnc_auto.html?path=%3Ftoken%3Dabc' } });
    const spice = await inject('POST', `/v2.1/servers/${U1}/remote-consoles`, 'u1:p1', { remote_console: { protocol: 'spice', type: 'spice-html5' } }, { 'openstack-api-version': 'compute 2.6' });
    expect(spice.json()).toEqual({ badRequest: { code: 400, message: 'Unavailable console type spice-html5.' } });
    expect((await inject('POST', `/v2.1/servers/${U1}/remote-consoles`, 'u1:p1', { remote_console: { protocol: 'vnc', type: 'novnc' } })).statusCode).toBe(404);
    rpc.answer = () => {
      throw new RemoteError('ConsoleTypeInvalid', 'nova.exception', 'Invalid console type xvpvnc');
    };
    const xvp = await inject('POST', `/v2.1/servers/${U1}/remote-consoles`, 'u1:p1', { remote_console: { protocol: 'vnc', type: 'xvpvnc' } }, { 'openstack-api-version': 'compute 2.6' });
    expect(xvp.json()).toEqual({ badRequest: { code: 400, message: 'Invalid console type xvpvnc' } });
  });

  test('os-getSerialConsole up to 2.5, as Nova: type serial only, policy before the lookup', async () => {
    rpc.answer = () => ({ access_url: 'ws://proxy:6083/?token=abc' });
    const old = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getSerialConsole': { type: 'serial' } });
    expect(old.json()).toEqual({ console: { type: 'serial', url: 'ws://proxy:6083/?token=abc' } });
    expect(rpc.sent[0]).toMatchObject({ kind: 'call', method: 'get_serial_console', args: { console_type: 'serial' } });
    const gone = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getSerialConsole': { type: 'serial' } }, { 'openstack-api-version': 'compute 2.6' });
    expect(gone.statusCode).toBe(404);
    const wrong = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getSerialConsole': { type: 'novnc' } });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().badRequest.message).toMatch(/^Invalid input for field\/attribute type/);
    rpc.answer = () => {
      throw new RemoteError('ConsoleTypeUnavailable', 'nova.exception', 'Unavailable console type serial.');
    };
    const off = await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'os-getSerialConsole': { type: 'serial' } });
    expect(off.json()).toEqual({ badRequest: { code: 400, message: 'Unavailable console type serial.' } });
    expect(rpc.sent).toHaveLength(2);
  });

  test('diagnostics: legacy dict below 2.48, the Diagnostics fields from 2.48', async () => {
    rpc.answer = (method) =>
      method === 'get_diagnostics'
        ? { cpu0_time: 5, memory: 65536 }
        : { 'nova_object.name': 'Diagnostics', 'nova_object.namespace': 'nova', 'nova_object.version': '1.0', 'nova_object.changes': [], 'nova_object.data': { state: 'running', driver: 'libvirt', memory_details: { 'nova_object.data': { maximum: 64, used: 20 } } } };
    expect((await inject('GET', `/v2.1/servers/${U1}/diagnostics`)).json()).toEqual({ cpu0_time: 5, memory: 65536 });
    const v = (await inject('GET', `/v2.1/servers/${U1}/diagnostics`, 'admin', undefined, { 'openstack-api-version': 'compute 2.48' })).json();
    expect(v).toMatchObject({ state: 'running', driver: 'libvirt', uptime: null, num_cpus: null, cpu_details: [], memory_details: { maximum: 64, used: 20 } });
    expect((await inject('GET', `/v2.1/servers/${U1}/diagnostics`, 'u1:p1')).statusCode).toBe(403);
  });

  test('monitor passthrough: absent unless enabled, admin only when enabled', async () => {
    const off = await inject('POST', `/v2.1/servers/${U1}/action`, 'admin', { 'novamon-monitorCommand': { command: 'info status', hmp: true } });
    expect(off.json()).toEqual({ badRequest: { code: 400, message: 'There is no such action: novamon-monitorCommand' } });
    await app.close();
    await build({ passthrough: true });
    rpc.answer = () => 'VM status: running\r\n';
    const on = await inject('POST', `/v2.1/servers/${U1}/action`, 'admin', { 'novamon-monitorCommand': { command: 'info status', hmp: true } });
    expect(on.json()).toEqual({ return: 'VM status: running\r\n' });
    expect(rpc.sent[0]).toMatchObject({ method: 'monitor_command', args: { command: 'info status', hmp: true } });
    expect((await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { 'novamon-monitorCommand': { command: 'info status' } })).statusCode).toBe(403);
  });
});

describe('instance actions', () => {
  test('events shown to admins always, to members from 2.51 without traceback', async () => {
    await inject('POST', `/v2.1/servers/${U1}/action`, 'u1:p1', { pause: null });
    const a = stores.actionRows[0]!;
    a.events.push({ id: 1, event: 'compute_pause_instance', actionId: a.id, startTime: new Date(), finishTime: new Date(), result: 'Success', traceback: null, host: 'host1', details: null, createdAt: new Date() });
    const url = `/v2.1/servers/${U1}/os-instance-actions/${a.requestId}`;
    expect((await inject('GET', url, 'u1:p1')).json().instanceAction).not.toHaveProperty('events');
    const m51 = (await inject('GET', url, 'u1:p1', undefined, { 'openstack-api-version': 'compute 2.51' })).json().instanceAction;
    expect(m51.events[0]).toEqual({ event: 'compute_pause_instance', start_time: expect.any(String), finish_time: expect.any(String), result: 'Success' });
    const admin62 = (await inject('GET', url, 'admin', undefined, { 'openstack-api-version': 'compute 2.62' })).json().instanceAction;
    expect(admin62.events[0]).toMatchObject({ traceback: null, host: 'host1', hostId: expect.stringMatching(/^[0-9a-f]{56}$/) });
    expect((await inject('GET', `/v2.1/servers/${U1}/os-instance-actions/req-nope`, 'u1:p1')).json()).toEqual({ itemNotFound: { code: 404, message: 'Action req-nope not found' } });
    const list = (await inject('GET', `/v2.1/servers/${U1}/os-instance-actions?limit=1`, 'u1:p1', undefined, { 'openstack-api-version': 'compute 2.58' })).json();
    expect(list.instanceActions[0]).toHaveProperty('updated_at');
    expect(list.links[0].rel).toBe('next');
  });
});

describe('pipeline', () => {
  test('inbound global request ids are used for RPC, not echoed', async () => {
    const global = 'req-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    const r = await inject('POST', `/v2.1/servers/${U1}/action`, 'admin', { pause: null }, { 'x-openstack-request-id': global });
    expect(r.headers['x-openstack-request-id']).not.toBe(global);
    expect(rpc.sent[0]?.ctx.globalRequestId).toBe(global);
  });

  test('a body over the limit is 413 without authentication', async () => {
    const r = await app.inject({ method: 'POST', url: `/v2.1/servers/${U1}/action`, payload: 'x'.repeat(3000), headers: { 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(413);
  });
});

describe('Keystone authenticator', () => {
  test('validates with a service token, caches until min(expiry, cache time), rejects unknown tokens', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const calls: string[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      const headers = init.headers as Record<string, string>;
      calls.push(`${init.method} ${url}`);
      if (init.method === 'POST') {
        return new Response(JSON.stringify({ token: { expires_at: '2030-01-01T01:00:00Z' } }), { status: 201, headers: { 'X-Subject-Token': 'svc' } });
      }
      if (headers['X-Subject-Token'] !== 'good') return new Response('{}', { status: 404 });
      return new Response(
        JSON.stringify({ token: { expires_at: '2030-01-01T00:00:30Z', user: { id: 'u', name: 'demo' }, project: { id: 'p', name: 'demo' }, roles: [{ name: 'member' }] } }),
        { status: 200 },
      );
    });
    try {
      const auth = new KeystoneAuthenticator(
        { authUrl: 'http://ks/v3', wwwAuthenticateUri: 'http://public/v3', username: 'nova', password: 'x', projectName: 'service', userDomainName: 'Default', projectDomainName: 'Default', tokenCacheTime: 300 },
        silentLogger(),
        undefined,
        () => now,
      );
      const first = await auth.authenticate({ 'x-auth-token': 'good' });
      expect(first).toMatchObject({ ok: true, identity: { userId: 'u', projectId: 'p', isAdmin: false, roles: ['member'] } });
      await auth.authenticate({ 'x-auth-token': 'good' });
      expect(auth.stats).toEqual({ hits: 1, validations: 1, rejected: 0 });
      expect(calls.filter((c) => c.startsWith('GET'))).toHaveLength(1);
      now += 31_000;
      const expired = await auth.authenticate({ 'x-auth-token': 'good' });
      expect(expired).toMatchObject({ ok: false, status: 401, headers: { 'WWW-Authenticate': 'Keystone uri="http://public/v3"' } });
      expect(await auth.authenticate({ 'x-auth-token': 'forged' })).toMatchObject({ ok: false, status: 401 });
      expect(await auth.authenticate({})).toMatchObject({ ok: false, status: 401 });
      expect(calls.filter((c) => c.startsWith('POST'))).toHaveLength(1);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
