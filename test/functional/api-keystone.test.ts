// novamon-api behind a real Keystone: tokens validated with the service user, cached until expiry,
// 401 with WWW-Authenticate for missing, forged, revoked and expired tokens, and Nova's default
// policies: admin allowed everything, a project member denied where Nova denies it. The real clients
// authenticate with passwords and find novamon-api in Keystone's catalog.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runClient, startApiStack, type ApiStack, type ClientResult } from '../fixtures/api-stack.js';
import { startKeystone, type KeystoneFixture, type KeystoneUser } from '../fixtures/keystone.js';

const TOKEN_LIFETIME = 50;
let ks: KeystoneFixture;
let stack: ApiStack;
let uuid: string;
let early: { token: string; expiresAt: Date };

function clientEnv(u: KeystoneUser): string[] {
  return [
    '--os-auth-url', ks.authUrl, '--os-username', u.name, '--os-password', u.password, '--os-project-name', u.project,
    '--os-user-domain-name', 'Default', '--os-project-domain-name', 'Default', '--os-region-name', 'RegionOne',
  ];
}

const osc = (u: KeystoneUser, ...args: string[]) => runClient('/usr/bin/openstack', [...clientEnv(u), ...args]);
const nova = (u: KeystoneUser, ...args: string[]) => runClient('/usr/bin/nova', [...clientEnv(u), ...args]);

function ok(r: ClientResult): string {
  if (r.code !== 0) throw new Error(`client failed (${r.code}):\n${r.stderr}\n${r.stdout}\n--- logs ---\n${stack.logs().slice(-3000)}`);
  return r.stdout;
}

async function get(path: string, token?: string) {
  const res = await fetch(`${stack.url}${path}`, { headers: token === undefined ? {} : { 'X-Auth-Token': token }, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

async function cacheCounts(): Promise<{ hit: number; miss: number }> {
  const text = (await get('/metrics')).text;
  const value = (result: string) => Number(new RegExp(`novamon_api_token_validations_total\\{[^}]*result="${result}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { hit: value('hit'), miss: value('miss') };
}

beforeAll(async () => {
  ks = await startKeystone({ tokenLifetime: TOKEN_LIFETIME });
  stack = await startApiStack({
    guests: [{ displayName: 'member-vm', projectId: ks.member.projectId, userId: ks.member.userId, vnc: false }],
    auth: { authUrl: ks.authUrl, username: ks.service.name, password: ks.service.password, projectName: ks.service.project },
  });
  uuid = stack.instances[0]!.uuid;
  await ks.registerService('compute', 'nova', stack.endpoint);
  // OSC builds an image client for server list/show even when no server has an image; a cloud has
  // Glance, this test has only novamon-api, which answers the (unused) image lookups quickly.
  await ks.registerService('image', 'glance', stack.url);
  early = await ks.token(ks.member);
}, 300_000);

afterAll(async () => {
  await stack?.close();
  await ks?.close();
});

describe('tokens', () => {
  test('no token: 401 with WWW-Authenticate naming Keystone', async () => {
    const r = await get('/v2.1/servers');
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe(`Keystone uri="${ks.authUrl}"`);
    expect(JSON.parse(r.text)).toEqual({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
  });

  test('forged and revoked tokens: 401', async () => {
    expect((await get('/v2.1/servers', 'gAAAAABforgedforgedforgedforged')).status).toBe(401);
    const t = await ks.token(ks.member);
    await ks.revoke(t.token);
    expect((await get('/v2.1/servers', t.token)).status).toBe(401);
  });

  test('a validated token is cached: Keystone is asked once for repeated requests', async () => {
    const t = await ks.token(ks.admin);
    const before = await cacheCounts();
    for (let i = 0; i < 3; i++) expect((await get('/v2.1/servers', t.token)).status).toBe(200);
    const after = await cacheCounts();
    expect(after.miss - before.miss).toBe(1);
    expect(after.hit - before.hit).toBe(2);
    expect((await get('/v2.1/servers', early.token)).status).toBe(200);
  });
});

describe('policy with Keystone roles', () => {
  test('a member lists and reads its own server, and is denied diagnostics and all_tenants', async () => {
    const t = (await ks.token(ks.member)).token;
    const list = JSON.parse((await get('/v2.1/servers', t)).text) as { servers: { id: string }[] };
    expect(list.servers.map((s) => s.id)).toEqual([uuid]);
    expect((await get(`/v2.1/servers/${uuid}/os-instance-actions`, t)).status).toBe(200);
    const diag = await get(`/v2.1/servers/${uuid}/diagnostics`, t);
    expect(diag.status).toBe(403);
    expect(JSON.parse(diag.text)).toEqual({ forbidden: { code: 403, message: "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed." } });
    expect((await get('/v2.1/servers?all_tenants=1', t)).status).toBe(403);
    const show = JSON.parse((await get(`/v2.1/servers/${uuid}`, t)).text) as { server: Record<string, unknown> };
    expect(show.server).not.toHaveProperty('OS-EXT-SRV-ATTR:host');
  });

  test('an admin of another project does not see it without all_tenants, and sees it with', async () => {
    const t = (await ks.token(ks.admin)).token;
    expect(JSON.parse((await get('/v2.1/servers', t)).text)).toEqual({ servers: [] });
    const all = JSON.parse((await get('/v2.1/servers/detail?all_tenants=1', t)).text) as { servers: Record<string, unknown>[] };
    expect(all.servers.map((s) => s['id'])).toEqual([uuid]);
    expect(all.servers[0]?.['OS-EXT-SRV-ATTR:host']).toBe(stack.host);
  });
});

describe('clients through the catalog', () => {
  test('openstack as admin: list --all-projects and show --diagnostics', async () => {
    const list = JSON.parse(ok(await osc(ks.admin, 'server', 'list', '--all-projects', '-f', 'json'))) as Record<string, string>[];
    expect(list.map((s) => s['ID'])).toEqual([uuid]);
    const diag = JSON.parse(ok(await osc(ks.admin, 'server', 'show', '--diagnostics', uuid, '-f', 'json'))) as Record<string, unknown>;
    expect(Object.keys(diag).length).toBeGreaterThan(0);
  });

  test('openstack as the member: show works, diagnostics are forbidden', async () => {
    const show = JSON.parse(ok(await osc(ks.member, 'server', 'show', 'member-vm', '-f', 'json'))) as Record<string, unknown>;
    expect(show['id']).toBe(uuid);
    const diag = await osc(ks.member, 'server', 'show', '--diagnostics', 'member-vm');
    expect(diag.code).not.toBe(0);
    expect(diag.stderr).toContain("Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.");
  });

  test('nova as the member: list, console-log and instance-action-list', async () => {
    expect(ok(await nova(ks.member, 'list'))).toContain('member-vm');
    ok(await nova(ks.member, 'console-log', '--length', '3', 'member-vm'));
    ok(await nova(ks.member, 'instance-action-list', 'member-vm'));
    const denied = await nova(ks.member, 'diagnostics', 'member-vm');
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/HTTP 403/);
  });
});

describe('expiry', () => {
  test('a cached token stops working when it expires', async () => {
    const wait = early.expiresAt.getTime() + 1500 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const r = await get('/v2.1/servers', early.token);
    expect(r.status).toBe(401);
  }, (TOKEN_LIFETIME + 30) * 1000);
});
