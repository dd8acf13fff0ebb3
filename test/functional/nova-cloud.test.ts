// novamon-compute as a compute host of a real Nova cloud: Nova's own nova-api (noauth2), nova-conductor,
// nova-novncproxy and nova-serialproxy (python3-nova) on RabbitMQ and PostgreSQL, three novamon-compute hosts with
// `instance_store = conductor`, each serving a real QEMU guest, all driven with the unchanged
// `openstack` client against Nova's API. oslo.messaging's own notification listener watches the
// versioned notifications. One control plane for the whole file.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, launchChromium, sampleCanvas } from '../fixtures/browser.js';
import { createPgDatabase, runPython, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { FIXTURE_CONSOLE_LINE, FIXTURE_TICK_PREFIX, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { startNovaCloud, type NovaCloud, type NovaServer } from '../fixtures/nova-cloud.js';
import { freePort } from '../fixtures/scratch.js';
import { openSerialSession } from '../fixtures/serial-proxy.js';

interface Member {
  host: string;
  statePath: string;
  guest: FixtureGuest;
  server: NovaServer;
  compute: ComputeService;
  metricsUrl: string;
  dropDatabase: () => Promise<void>;
}

interface Heard {
  priority: string;
  publisher_id: string;
  event_type: string;
  payload: { 'nova_object.name'?: string; 'nova_object.data'?: Record<string, unknown> };
  ctxt: Record<string, unknown>;
}

let cloud: NovaCloud;
const members: Member[] = [];
let listener: ChildProcess | null = null;
const heard: Heard[] = [];

async function startListener(): Promise<void> {
  const spec = { url: cloud.transportUrl, exchange: cloud.controlExchange, topics: [cloud.notificationTopics.versioned] };
  const p = spawn('/usr/bin/python3', [path.resolve(import.meta.dirname, 'interop/notification_listener.py'), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
  listener = p;
  let ready = false;
  createInterface({ input: p.stdout }).on('line', (line) => {
    const msg = JSON.parse(line) as Heard & { ready?: boolean };
    if (msg.ready) ready = true;
    else heard.push(msg);
  });
  const deadline = Date.now() + 120_000;
  while (!ready) {
    if (p.exitCode !== null || Date.now() > deadline) throw new Error('the oslo notification listener did not start');
    await sleep(200);
  }
}

/** A host with one guest: the server in Nova's database (ids in order), then the guest and novamon-compute. */
async function startMember(i: number, server: NovaServer): Promise<Member> {
  const host = server.host;
  const statePath = mkdtempSync(path.join(tmpdir(), 'novamon-cloud-host-'));
  const first = i === 0;
  const guest = await startFixtureGuest({ instancesPath: path.join(statePath, 'instances'), name: server.name, uuid: server.uuid, vnc: first, ...(first ? { serialTcpPort: await freePort() } : {}) });
  // novamon's own database keeps only diagnostics and the monitor audit here; instances are Nova's.
  const local = await createPgDatabase();
  try {
    const port = await freePort();
    const shared = cloud.computeConfig();
    const compute = await startComputeService({
      databaseUrl: local.url,
      statePath,
      config: {
        ...shared,
        DEFAULT: { ...shared['DEFAULT'], host, instance_store: 'conductor', report_interval: 5, shutdown_timeout: 5, sync_power_state_interval: 600 },
        oslo_middleware: { enabled: true, listen: '127.0.0.1', port },
      },
    });
    return { host, statePath, guest, server, compute, metricsUrl: `http://127.0.0.1:${port}/metrics`, dropDatabase: local.drop };
  } catch (err) {
    await guest.stop();
    await local.drop().catch(() => undefined);
    rmSync(statePath, { recursive: true, force: true });
    throw err;
  }
}

/** Nova's API, as the CLI sees it, read over REST for polling (the CLI takes seconds per run). */
async function serverView(uuid: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${cloud.endpoint}/servers/${uuid}`, { headers: { 'X-Auth-Token': 'admin:admin' }, signal: AbortSignal.timeout(10_000) });
  return ((await res.json()) as { server: Record<string, unknown> }).server;
}

async function waitForStatus(uuid: string, status: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await serverView(uuid).catch(() => ({}) as Record<string, unknown>);
    if (s['status'] === status && s['OS-EXT-STS:task_state'] === null) return;
    if (Date.now() > deadline) {
      throw new Error(`server ${uuid} is ${String(s['status'])}/${String(s['OS-EXT-STS:task_state'])}, wanted ${status}\n${members.map((m) => m.compute.logs().slice(-2000)).join('\n')}\n${cloud.logs()}`);
    }
    await sleep(250);
  }
}

function ok(r: { code: number; stdout: string; stderr: string }, what: string): string {
  if (r.code !== 0) throw new Error(`openstack ${what} failed (${r.code}): ${r.stderr}\n${cloud.logs()}`);
  return r.stdout;
}

/**
 * The compute events of the latest `action` on a server, as `openstack server event show` prints them
 * (2.62: with the host that ran each event). The request id is looked up over REST to spare a CLI run.
 */
async function lastAction(uuid: string, action: string): Promise<{ requestId: string; events: { event: string; result: string; host?: string }[] }> {
  const res = await fetch(`${cloud.endpoint}/servers/${uuid}/os-instance-actions`, { headers: { 'X-Auth-Token': 'admin:admin' }, signal: AbortSignal.timeout(10_000) });
  const list = ((await res.json()) as { instanceActions: { action: string; request_id: string }[] }).instanceActions;
  const mine = list.find((a) => a.action === action);
  if (!mine) throw new Error(`no ${action} action in ${JSON.stringify(list)}`);
  const shown = await cloud.openstackJson<{ events: { event: string; result: string; host?: string }[] }>(['server', 'event', 'show', uuid, mine.request_id], { microversion: '2.62' });
  return { requestId: mine.request_id, events: shown.events };
}

const requestIds = new Map<string, string>();

async function rpcMessages(m: Member, method: string, kind: string): Promise<number> {
  const text = await (await fetch(m.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith('novamon_rpc_messages_total{') && l.includes(`method="${method}"`) && l.includes(`kind="${kind}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  cloud = await startNovaCloud({ notificationFormat: 'versioned', notifyOnStateChange: 'vm_and_task_state', reportInterval: 5, serviceDownTime: 30 });
  await startListener();
  const servers: NovaServer[] = [];
  for (const i of [0, 1, 2]) {
    const name = `instance-${(0x10 + i).toString(16).padStart(8, '0')}`;
    servers.push(await cloud.createServer({ host: `novamon-${i}-${randomUUID().slice(0, 6)}`, name, uuid: randomUUID(), displayName: `vm-${i}` }));
  }
  // Each member is kept as soon as it is up, so afterAll stops it even when a sibling failed to start.
  const started = await Promise.allSettled(servers.map((s, i) => startMember(i, s).then((m) => (members[i] = m))));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}, 400_000);

afterAll(async () => {
  listener?.stdin?.end();
  listener?.kill();
  for (const m of members.filter((x): x is Member => x !== undefined)) {
    await m.compute.cleanup().catch(() => undefined);
    await m.guest.stop().catch(() => undefined);
    await m.dropDatabase().catch(() => undefined);
    rmSync(m.statePath, { recursive: true, force: true });
  }
  await cloud?.stop();
}, 120_000);

describe('novamon-compute in a Nova cloud', () => {
  test('the control plane lists every novamon host as an enabled, up nova-compute service', async () => {
    await expect
      .poll(async () => {
        const services = await cloud.openstackJson<{ Binary: string; Host: string; Status: string; State: string }[]>(['compute', 'service', 'list']);
        return members.every((m) => services.some((s) => s.Binary === 'nova-compute' && s.Host === m.host && s.Status === 'enabled' && s.State === 'up'));
      }, { timeout: 60_000, interval: 2000 })
      .toBe(true);
    const servers = await cloud.openstackJson<{ ID: string; Status: string }[]>(['server', 'list']);
    for (const m of members) expect(servers).toContainEqual(expect.objectContaining({ ID: m.server.uuid, Status: 'ACTIVE' }));
  });

  test('console log and diagnostics (2.48) come from the guest through the host', async () => {
    const m = members[0] as Member;
    await waitForFileText(m.guest.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000);
    const log = ok(await cloud.openstack(['console', 'log', 'show', m.server.uuid]), 'console log show');
    expect(log).toContain(FIXTURE_CONSOLE_LINE);
    expect(log).toContain(FIXTURE_TICK_PREFIX);
    const diag = await cloud.openstackJson<Record<string, unknown>>(['server', 'show', '--diagnostics', m.server.uuid], { microversion: '2.48' });
    expect(diag).toMatchObject({ state: 'running', hypervisor: expect.any(String), num_cpus: 1 });
  });

  test.skipIf(!chromiumAvailable())('the noVNC URL opens the guest\'s screen through Nova\'s own nova-novncproxy', async () => {
    const m = members[0] as Member;
    const url = (await cloud.openstackJson<{ url: string }>(['console', 'url', 'show', '--novnc', m.server.uuid])).url;
    expect(url.startsWith(`${cloud.novncproxyBaseUrl}?path=%3Ftoken%3D`)).toBe(true);
    let browser: Browser | null = null;
    try {
      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
      await page.goto(url);
      await expect.poll(async () => (await page.textContent('#status')) ?? '', { timeout: 60_000, interval: 500 }).toMatch(/^Connected/);
      await expect.poll(async () => (await sampleCanvas(page))?.lit ?? 0, { timeout: 60_000, interval: 1000 }).toBeGreaterThan(200);
    } finally {
      await browser?.close();
    }
  });

  test('the serial console URL shows the guest\'s serial port through Nova\'s own nova-serialproxy', async () => {
    const m = members[0] as Member;
    const url = (await cloud.openstackJson<{ url: string }>(['console', 'url', 'show', '--serial', m.server.uuid])).url;
    expect(url).toMatch(new RegExp(`^${cloud.serialproxyBaseUrl.replace(/[.]/g, '\\.')}\\?token=[0-9a-f-]{36}$`));
    const session = await openSerialSession(url);
    try {
      expect(await session.tick()).toMatch(/^novamon fixture tick \d+$/);
    } finally {
      await session.close();
    }
  });

  const steps: { verb: string[]; action: string; event: string; status: string }[] = [
    { verb: ['stop'], action: 'stop', event: 'compute_stop_instance', status: 'SHUTOFF' },
    { verb: ['start'], action: 'start', event: 'compute_start_instance', status: 'ACTIVE' },
    { verb: ['pause'], action: 'pause', event: 'compute_pause_instance', status: 'PAUSED' },
    { verb: ['unpause'], action: 'unpause', event: 'compute_unpause_instance', status: 'ACTIVE' },
    { verb: ['reboot', '--hard'], action: 'reboot', event: 'compute_reboot_instance', status: 'ACTIVE' },
  ];
  for (const step of steps) {
    test(`server ${step.verb.join(' ')} → ${step.status}, task_state None, ${step.event} Success`, async () => {
      const m = members[0] as Member;
      ok(await cloud.openstack(['server', ...step.verb, m.server.uuid]), `server ${step.verb.join(' ')}`);
      await waitForStatus(m.server.uuid, step.status);
      const shown = await cloud.openstackJson<Record<string, unknown>>(['server', 'show', m.server.uuid]);
      expect(shown).toMatchObject({ status: step.status, 'OS-EXT-STS:task_state': null });
      const action = await lastAction(m.server.uuid, step.action);
      requestIds.set(step.action, action.requestId);
      expect(action.events).toContainEqual(expect.objectContaining({ event: step.event, result: 'Success', host: m.host }));
    });
  }

  test('oslo\'s notification listener heard each operation\'s versioned notifications, in order', async () => {
    const m = members[0] as Member;
    const expected = ['power_off', 'power_on', 'pause', 'unpause', 'reboot'].flatMap((a) => [`instance.${a}.start`, `instance.${a}.end`]);
    const mine = () => heard.filter((h) => h.payload['nova_object.data']?.['uuid'] === m.server.uuid && h.publisher_id === `nova-compute:${m.host}`);
    await expect.poll(() => mine().length, { timeout: 30_000 }).toBeGreaterThanOrEqual(expected.length);
    expect(mine().map((h) => h.event_type)).toEqual(expected);
    const stopEnd = mine().find((h) => h.event_type === 'instance.power_off.end');
    expect(stopEnd?.payload['nova_object.name']).toBe('InstanceActionPayload');
    // The payload carries the Instance nova-api sent; fields it did not send (the flavor) are null, not lazy-loaded.
    expect(stopEnd?.payload['nova_object.data']).toMatchObject({ state: 'stopped', power_state: 'shutdown', task_state: null, host: m.host, display_name: 'vm-0', tenant_id: m.server.projectId });
    expect(stopEnd?.payload['nova_object.data']?.['request_id']).toBe(requestIds.get('stop'));
    // Nova's conductor reports the same saves as instance.update (notify_on_state_change), as for nova-compute.
    expect(heard.some((h) => h.event_type === 'instance.update' && h.payload['nova_object.data']?.['uuid'] === m.server.uuid)).toBe(true);
  });

  test('a guest killed from outside is SHUTOFF in Nova\'s API within seconds', async () => {
    const m = members[0] as Member;
    await waitForStatus(m.server.uuid, 'ACTIVE');
    const pid = m.guest.currentPid();
    expect(pid).not.toBeNull();
    const t0 = Date.now();
    process.kill(pid as number, 'SIGKILL');
    await waitForStatus(m.server.uuid, 'SHUTOFF', 60_000);
    const ms = Date.now() - t0;
    console.log(`guest SIGKILL → SHUTOFF in Nova's API: ${ms} ms`);
    expect(ms).toBeLessThan(15_000);
  });

  test('each server\'s actions reach its own host only', async () => {
    const [a, b, c] = members as [Member, Member, Member];
    ok(await cloud.openstack(['server', 'pause', b.server.uuid]), 'server pause');
    await waitForStatus(b.server.uuid, 'PAUSED');
    expect((await lastAction(b.server.uuid, 'pause')).events).toContainEqual(expect.objectContaining({ event: 'compute_pause_instance', result: 'Success', host: b.host }));
    expect(await rpcMessages(b, 'pause_instance', 'cast')).toBe(1);
    expect(await rpcMessages(c, 'pause_instance', 'cast')).toBe(0);
    expect((await serverView(c.server.uuid))['status']).toBe('ACTIVE');
    // Host a ran its own pause earlier; it saw no message about b's server.
    expect(a.compute.logs()).not.toContain(b.server.uuid);
    expect(c.compute.logs()).not.toContain(b.server.uuid);
    ok(await cloud.openstack(['server', 'unpause', b.server.uuid]), 'server unpause');
    await waitForStatus(b.server.uuid, 'ACTIVE');
  });

  test('a fanout cast from Nova\'s compute RPC client reaches every host', async () => {
    const before = await Promise.all(members.map((m) => rpcMessages(m, 'get_host_uptime', 'cast')));
    await runPython('fanout_cast.py', { url: cloud.transportUrl, exchange: cloud.controlExchange, method: 'get_host_uptime', version: '6.0' });
    await expect
      .poll(async () => (await Promise.all(members.map((m) => rpcMessages(m, 'get_host_uptime', 'cast')))).map((n, i) => n - (before[i] as number)), { timeout: 20_000 })
      .toEqual([1, 1, 1]);
  });

  // Last: it leaves the server in ERROR, as a nova-compute whose driver cannot delete leaves it.
  test('an operation the host does not perform is answered as nova-compute answers it: no server left in a task_state', async () => {
    const c = members[2] as Member;
    ok(await cloud.openstack(['server', 'suspend', c.server.uuid]), 'server suspend');
    await waitForStatus(c.server.uuid, 'ACTIVE');
    expect((await lastAction(c.server.uuid, 'suspend')).events).toContainEqual(expect.objectContaining({ event: 'compute_suspend_instance', result: 'Error', host: c.host }));
    expect(await rpcMessages(c, 'suspend_instance', 'cast')).toBe(1);
    ok(await cloud.openstack(['server', 'delete', c.server.uuid]), 'server delete');
    await waitForStatus(c.server.uuid, 'ERROR');
    const shown = await cloud.openstackJson<Record<string, unknown>>(['server', 'show', c.server.uuid]);
    expect(shown).toMatchObject({ status: 'ERROR', 'OS-EXT-STS:task_state': null });
    expect(JSON.stringify(shown['fault'])).toContain('terminate_instance is not implemented by this driver');
    expect((await lastAction(c.server.uuid, 'delete')).events).toContainEqual(expect.objectContaining({ event: 'compute_terminate_instance', result: 'Error', host: c.host }));
    // The guest itself is untouched.
    expect(c.guest.currentPid()).not.toBeNull();
  });
});
