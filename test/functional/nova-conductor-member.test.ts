// novamon-compute as a member of a real Nova cloud (instance_store = conductor): Nova's own nova-api,
// nova-conductor and nova-novncproxy (python3-nova) judge it. The service is up while it reports and
// down after service_down_time once it stops; stop/start reach Nova's database with their events; a
// cast the conductor refuses is handled as Nova's manager handles it; a guest killed from outside is
// SHUTOFF in Nova's API without waiting for a periodic sync; console tokens are Nova's proxy's.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runPython, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, FIXTURE_CONSOLE_LINE, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { startNovaCloud, type NovaCloud, type NovaServer } from '../fixtures/nova-cloud.js';

const REPORT_INTERVAL = 2;
const SERVICE_DOWN_TIME = 8;

interface ServiceRow {
  Binary: string;
  Host: string;
  Status: string;
  State: string;
}

describe('novamon-compute in a Nova cloud, instances in Nova\'s database through nova-conductor', () => {
  let cloud: NovaCloud;
  let compute: ComputeService;
  let guest: FixtureGuest;
  let server: NovaServer;
  let statePath: string;
  const host = `novamon-${randomUUID().slice(0, 8)}`;
  const uuid = randomUUID();
  const name = 'instance-0000003c';

  /** GET on Nova's API (noauth2, admin), with a microversion. */
  async function nova<T>(pathname: string, microversion = '2.53'): Promise<T> {
    const res = await fetch(`${cloud.endpoint}${pathname}`, {
      headers: { 'X-Auth-Token': 'admin:admin', 'X-OpenStack-Nova-API-Version': microversion, Accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`GET ${pathname}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }
  const show = async () => (await nova<{ server: Record<string, unknown> }>(`/servers/${uuid}`)).server;
  async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number, everyMs = 200): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown = null;
    for (;;) {
      try {
        const v = await probe();
        if (v !== null) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms (${String(last)})\n${compute?.logs().slice(-3000)}\n${cloud?.logs().slice(-3000)}`);
      await sleep(everyMs);
    }
  }
  const serviceState = async () => {
    const { services } = await nova<{ services: { binary: string; host: string; state: string; status: string }[] }>('/os-services');
    return services.find((s) => s.binary === 'nova-compute' && s.host === host) ?? null;
  };
  const serverIs = (status: string) => async () => {
    const s = await show();
    return s['status'] === status && s['OS-EXT-STS:task_state'] === null ? s : null;
  };
  type ActionEvent = { event: string; result: string; traceback?: string | null };
  async function events(): Promise<{ action: string; request_id: string; events: ActionEvent[] }[]> {
    const { instanceActions } = await nova<{ instanceActions: { action: string; request_id: string }[] }>(`/servers/${uuid}/os-instance-actions`, '2.51');
    return Promise.all(
      instanceActions.map(async (a) => (await nova<{ instanceAction: { action: string; request_id: string; events: ActionEvent[] } }>(`/servers/${uuid}/os-instance-actions/${a.request_id}`, '2.51')).instanceAction),
    );
  }

  beforeAll(async () => {
    cloud = await startNovaCloud({ reportInterval: REPORT_INTERVAL, serviceDownTime: SERVICE_DOWN_TIME });
    statePath = mkdtempSync(path.join(tmpdir(), 'novamon-member-'));
    server = await cloud.createServer({ host, uuid, name, displayName: 'member-vm' });
    guest = await startFixtureGuest({ instancesPath: path.join(statePath, 'instances'), name, uuid, vnc: true });
    const shared = cloud.computeConfig();
    compute = await startComputeService({
      databaseUrl: '',
      statePath,
      config: {
        ...shared,
        // Housekeeping every 2 s instead of Nova's 300, so the token cleanup through the conductor is seen.
        DEFAULT: { ...(shared['DEFAULT'] ?? {}), host, instance_store: 'conductor', report_interval: REPORT_INTERVAL, shutdown_timeout: 5, instance_delete_interval: 2 },
      },
    });
  }, 420_000);

  afterAll(async () => {
    await compute?.cleanup();
    await guest?.stop();
    await cloud?.stop();
    if (statePath) rmSync(statePath, { recursive: true, force: true });
  });

  it('registers as nova-compute: enabled and up in `openstack compute service list`', async () => {
    await until('the service up', async () => ((await serviceState())?.state === 'up' ? true : null), 30_000);
    const list = await cloud.openstackJson<ServiceRow[]>(['compute', 'service', 'list']);
    expect(list).toContainEqual(expect.objectContaining({ Binary: 'nova-compute', Host: host, Status: 'enabled', State: 'up' }));
    // Disabling asks the host (set_host_enabled); a disabled nova-compute keeps reporting, as Nova's does.
    const disable = await cloud.openstack(['compute', 'service', 'set', '--disable', host, 'nova-compute'], { microversion: '2.53' });
    expect(disable.code, disable.stderr).toBe(0);
    await sleep(3 * REPORT_INTERVAL * 1000);
    expect(await serviceState()).toMatchObject({ status: 'disabled', state: 'up' });
    expect(compute.logs()).toMatch(/compute service disabled by the control plane/);
    expect((await cloud.openstack(['compute', 'service', 'set', '--enable', host, 'nova-compute'], { microversion: '2.53' })).code).toBe(0);
  });

  it('stop and start reach Nova: SHUTOFF then ACTIVE with task_state None, each event Success under the API\'s request', async () => {
    await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000);
    const stop = await cloud.openstack(['server', 'stop', uuid]);
    expect(stop.code, stop.stderr).toBe(0);
    const off = await until('SHUTOFF', serverIs('SHUTOFF'), 90_000);
    expect(off['OS-EXT-STS:power_state']).toBe(4);
    const start = await cloud.openstack(['server', 'start', uuid]);
    expect(start.code, start.stderr).toBe(0);
    const on = await until('ACTIVE', serverIs('ACTIVE'), 90_000);
    expect(on['OS-EXT-STS:power_state']).toBe(1);
    const byAction = Object.fromEntries((await events()).map((a) => [a.action, a.events.map((e) => [e.event, e.result])]));
    expect(byAction['stop']).toEqual([['compute_stop_instance', 'Success']]);
    expect(byAction['start']).toEqual([['compute_start_instance', 'Success']]);
  });

  it('hands out console tokens Nova\'s own nova-novncproxy accepts (it calls back validate_console_port)', async () => {
    const res = await cloud.openstackJson<{ url: string }>(['console', 'url', 'show', '--novnc', uuid]);
    const token = decodeURIComponent(new URL(res.url).searchParams.get('path') ?? '').replace(/^\?token=/, '');
    expect(token).toMatch(/^[0-9a-f-]{36}$/);
    const base = new URL(cloud.novncproxyBaseUrl);
    const greeting = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://${base.host}/?token=${token}`, ['binary'], { headers: { Origin: `http://${base.host}` } });
      const timer = setTimeout(() => reject(new Error('no RFB greeting from the proxy within 30 s')), 30_000);
      ws.on('message', (data: Buffer) => {
        clearTimeout(timer);
        ws.close();
        resolve(data.toString('latin1'));
      });
      ws.on('error', (err) => reject(err));
    });
    // Nova's RFB security proxy speaks to the browser once it has validated the token and reached the guest.
    expect(greeting).toMatch(/^RFB 003\.00[38]/);
  });

  it('deletes expired console tokens from Nova\'s database through the conductor, as nova-compute\'s periodic task does', async () => {
    const db = new pg.Client({ connectionString: cloud.cellDatabaseUrl });
    await db.connect();
    try {
      const now = Math.floor(Date.now() / 1000);
      const row = (hash: string, expires: number) => db.query(
        'INSERT INTO console_auth_tokens (created_at, token_hash, console_type, host, port, instance_uuid, expires) VALUES (now(), $1, $2, $3, $4, $5, $6)',
        [hash, 'novnc', '127.0.0.1', 5900, uuid, expires],
      );
      await row(`expired-${uuid}`, now - 60);
      await row(`live-${uuid}`, now + 600);
      const left = async () => (await db.query<{ token_hash: string }>('SELECT token_hash FROM console_auth_tokens WHERE token_hash IN ($1, $2) ORDER BY token_hash', [`expired-${uuid}`, `live-${uuid}`])).rows.map((r) => r.token_hash);
      await expect.poll(left, { timeout: 20_000, interval: 250 }).toEqual([`live-${uuid}`]);
    } finally {
      await db.end();
    }
  });

  it('a cast the conductor refuses (another task owns the instance) leaves an Error event and Nova\'s task_state alone', async () => {
    // Nova's rpcapi with an admin context and no project: the conductor files the event under the latest action.
    const [out] = await runPython<{ ok: boolean }[]>('nova_rpcapi.py', {
      url: cloud.transportUrl,
      exchange: cloud.controlExchange,
      host,
      instance: { uuid, id: server.id, host, vm_state: 'active', task_state: null, power_state: 1 },
      context: { is_admin: true },
      ops: [{ method: 'unpause_instance' }],
    });
    expect(out?.ok).toBe(true);
    // The guest runs, so unpausing it does nothing; the save expecting task_state `unpausing` is refused.
    const refused = await until(
      'an Error event for the unpause',
      async () => (await events()).flatMap((a) => a.events).find((e) => e.event === 'compute_unpause_instance' && e.result === 'Error') ?? null,
      60_000,
    );
    expect(refused.traceback).toContain('UnexpectedTaskStateError');
    const s = await show();
    expect(s['OS-EXT-STS:task_state']).toBeNull();
    expect(s['OS-EXT-STS:vm_state']).toBe('active');
    expect(s['status']).toBe('ACTIVE');
  });

  it('a guest killed from outside is SHUTOFF in Nova\'s API at once, with a stop action and QEMU\'s reason logged', async () => {
    const pid = guest.currentPid();
    expect(pid).not.toBeNull();
    const killedAt = Date.now();
    process.kill(pid as number, 'SIGKILL');
    await until('SHUTOFF', serverIs('SHUTOFF'), 30_000, 50);
    const ms = Date.now() - killedAt;
    console.log(`guest SIGKILL -> SHUTOFF in Nova's API: ${ms} ms`);
    expect(ms).toBeLessThan(15_000);
    const stops = (await events()).filter((a) => a.action === 'stop');
    expect(stops[0]?.events).toEqual([expect.objectContaining({ event: 'compute_stop_instance', result: 'Success' })]);
    expect(compute.logs()).toMatch(/Instance shutdown by itself\. Calling the stop API\./);
  });

  it('is down within service_down_time after it stops, and up again when it returns', async () => {
    const { code } = await compute.stop();
    expect(code).toBe(0);
    const stoppedAt = Date.now();
    await until('the service down', async () => ((await serviceState())?.state === 'down' ? true : null), (SERVICE_DOWN_TIME + 3 * REPORT_INTERVAL + 10) * 1000, 500);
    expect(Date.now() - stoppedAt).toBeLessThan((SERVICE_DOWN_TIME + 3 * REPORT_INTERVAL + 10) * 1000);
    await compute.start();
    await until('the service up again', async () => ((await serviceState())?.state === 'up' ? true : null), 30_000);
    const rows = (await nova<{ services: { binary: string; host: string }[] }>('/os-services')).services.filter((s) => s.host === host);
    expect(rows).toHaveLength(1); // the same row, not a second registration
  });
});
