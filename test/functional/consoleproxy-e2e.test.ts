// The console URL end to end: PostgreSQL, RabbitMQ, two fixture guests with VNC, novamon-compute and
// novamon-novncproxy from dist/, and Debian's Chromium. The URL comes from get_vnc_console over RPC and
// must show the guest's screen; refused requests must never reach the guest's VNC server; fifty bridges
// at once (real guests and in-process echo servers) must all carry bytes and close cleanly.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { KnexConsoleAuthTokenRepository } from '../../src/db/console-auth-token-repository.js';
import { KnexInstanceRepository } from '../../src/db/instance-repository.js';
import { createDatabase, type Database } from '../../src/db/knex.js';
import { syncSchema } from '../../src/db/migrate.js';
import { testPostgresUrl } from '../../src/db/test-database.js';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient } from '../../src/rpc/client.js';
import type { RequestContext } from '../../src/context.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { instancePrimitive } from '../../src/rpc/objects/instance.js';
import { RpcServer } from '../../src/rpc/server.js';
import { chromiumAvailable, launchChromium, sampleCanvas } from '../fixtures/browser.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const run = randomBytes(4).toString('hex');
const exchange = `novamon_cp_${run}`;
const dbName = `novamon_cp_${run}`;
const computeHost = `cp-${run}`;
const echoHost = `cp-echo-${run}`;
const adminCtx: Partial<RequestContext> = { isAdmin: true, roles: ['admin'] };

interface Guest {
  fixture: FixtureGuest;
  id: number;
  uuid: string;
}

let workDir: string;
let db: Database;
let adminPg: pg.Client;
let compute: ChildProcess;
let proxy: ChildProcess;
let proxyPort: number;
let baseUrl: string;
let connection: AmqpConnectionManager;
let rpc: RpcClient;
let standIn: RpcServer;
const guests: Guest[] = [];
const logs: Record<string, string[]> = { compute: [], proxy: [] };


/** Starts a dist/ binary and resolves once it logged `readyMsg`. */
function startService(name: 'compute' | 'proxy', script: string, config: string, readyMsg: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/main', script), '--config-file', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOVAMON_LOG_LEVEL: 'info' },
    });
    const timer = setTimeout(() => reject(new Error(`${script} not ready in 90 s:\n${logs[name]?.join('')}`)), 90_000);
    const onData = (d: Buffer) => {
      logs[name]?.push(d.toString());
      if (d.toString().includes(readyMsg)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code}:\n${logs[name]?.join('')}`));
    });
  });
}

async function stopService(child: ChildProcess | undefined): Promise<number | null> {
  if (!child || child.exitCode !== null) return child?.exitCode ?? null;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    child.kill('SIGKILL');
    return null;
  }
  return code;
}

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // the process is gone
  }
}

function computeCall(method: string, args: Record<string, unknown>, server = computeHost): Promise<unknown> {
  return rpc.call({ topic: 'compute', server, version: '6.0' }, adminCtx, method, args, { timeoutMs: 60_000 });
}

function instanceArg(g: Guest) {
  return instancePrimitive({ uuid: g.uuid, id: g.id, host: computeHost });
}

async function vncClients(g: Guest): Promise<number> {
  const reply = (await computeCall('monitor_command', { instance: instanceArg(g), command: JSON.stringify({ execute: 'query-vnc' }) })) as { clients?: unknown[] };
  return reply.clients?.length ?? 0;
}

async function vncConsole(g: Guest): Promise<{ host: string; port: number; token: string; access_url: string }> {
  return (await computeCall('get_vnc_console', { instance: instanceArg(g), console_type: 'novnc' })) as { host: string; port: number; token: string; access_url: string };
}

/** Opens a WebSocket through the proxy; rejects with `HTTP <status>` when the proxy refuses. */
function openWs(pathAndQuery: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}${pathAndQuery}`, ['binary'], { headers, handshakeTimeout: 30_000 });
    // Listen from the start: a guest's greeting can arrive before the test gets to read it.
    readers.set(ws, reader(ws));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      reject(new Error(`HTTP ${res.statusCode}`));
    });
    ws.once('error', reject);
    ws.once('open', () => resolve(ws));
  });
}

type Reader = ReturnType<typeof reader>;
const readers = new WeakMap<WebSocket, Reader>();
function readerOf(ws: WebSocket): Reader {
  const r = readers.get(ws);
  if (!r) throw new Error('socket not opened with openWs');
  return r;
}

/**
 * Collects binary messages; `take(n)` resolves with the next n bytes. A socket that closes first fails
 * the take at once with its close code and reason, so a bridge the proxy refused or dropped is told
 * apart from one that stayed open and silent.
 */
function reader(ws: WebSocket) {
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  let closed: string | null = null;
  ws.on('message', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiter?.();
  });
  ws.on('close', (code: number, reason: Buffer) => {
    closed = `closed with ${code}${reason.length ? ` (${reason.toString()})` : ''}`;
    waiter?.();
  });
  return {
    async take(n: number, timeoutMs = 30_000): Promise<Buffer> {
      const deadline = Date.now() + timeoutMs;
      while (buf.length < n) {
        if (closed !== null) throw new Error(`socket ${closed} after ${buf.length} of ${n} bytes`);
        if (Date.now() > deadline) throw new Error(`only ${buf.length} of ${n} bytes in ${timeoutMs} ms, socket still open`);
        await new Promise<void>((r) => {
          waiter = r;
          setTimeout(r, 200);
        });
      }
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    },
  };
}

/** The RFB 3.8 handshake with security type None, then one full framebuffer update request. */
async function rfbSession(ws: WebSocket, r: Reader = readerOf(ws)): Promise<{ width: number; height: number; updateBytes: number }> {
  expect((await r.take(12)).toString()).toBe('RFB 003.008\n');
  ws.send(Buffer.from('RFB 003.008\n'));
  const count = (await r.take(1))[0] ?? 0;
  const types = [...(await r.take(count))];
  expect(types).toContain(1);
  ws.send(Buffer.from([1]));
  expect((await r.take(4)).readUInt32BE(0)).toBe(0);
  ws.send(Buffer.from([1])); // ClientInit, shared
  const init = await r.take(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  await r.take(init.readUInt32BE(20)); // desktop name
  const req = Buffer.alloc(10);
  req.writeUInt8(3, 0); // FramebufferUpdateRequest, non-incremental
  req.writeUInt16BE(width, 6);
  req.writeUInt16BE(height, 8);
  ws.send(req);
  const head = await r.take(4);
  expect(head[0]).toBe(0); // FramebufferUpdate
  return { width, height, updateBytes: 4 };
}

function closeWs(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve(-1);
    ws.once('close', (code) => resolve(code));
    ws.close(1000);
  });
}

beforeAll(async () => {
  workDir = mkdtempSync(path.join(tmpdir(), 'novamon-cp-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  // One PostgreSQL database per run: novamon-compute and the proxy (separate processes) share it.
  adminPg = new pg.Client({ connectionString: testPostgresUrl(), connectionTimeoutMillis: 10_000 });
  await adminPg.connect();
  await adminPg.query(`create database "${dbName}"`);
  const dbUrl = new URL(testPostgresUrl());
  dbUrl.pathname = `/${dbName}`;
  db = await createDatabase({ connection: dbUrl.toString(), statePath: workDir, poolSize: 4, logger: silentLogger() });
  await syncSchema(db);

  const instancesPath = path.join(workDir, 'instances');
  for (let i = 0; i < 2; i++) {
    const id = 0x700000 + Math.floor(Math.random() * 0xfffff);
    const uuid = randomUUID();
    const fixture = await startFixtureGuest({ instancesPath, name: `instance-${id.toString(16).padStart(8, '0')}`, uuid, vnc: true });
    guests.push({ fixture, id, uuid });
  }

  proxyPort = await freePort();
  baseUrl = `http://127.0.0.1:${proxyPort}/vnc_auto.html`;
  const config = path.join(workDir, 'novamon.conf');
  writeFileSync(
    config,
    [
      '[DEFAULT]',
      `host = ${computeHost}`,
      'transport_url = rabbit://guest:guest@127.0.0.1:5672/',
      `control_exchange = ${exchange}`,
      'compute_driver = qemu',
      `state_path = ${workDir}`,
      `instances_path = ${instancesPath}`,
      'sync_power_state_interval = -1',
      'rpc_response_timeout = 30',
      '[database]',
      `connection = ${dbUrl.toString()}`,
      '[vnc]',
      `novncproxy_port = ${proxyPort}`,
      `novncproxy_base_url = ${baseUrl}`,
      '',
    ].join('\n'),
  );
  compute = await startService('compute', 'compute.js', config, 'novamon-compute ready');
  proxy = await startService('proxy', 'novncproxy.js', config, 'novamon-novncproxy ready');

  connection = new AmqpConnectionManager({ transportUrl: 'rabbit://guest:guest@127.0.0.1:5672/', logger: silentLogger(), connectionName: 'consoleproxy-test' });
  await connection.connect(10_000);
  rpc = new RpcClient({ connection, exchange, timeoutMs: 60_000, logger: silentLogger() });
}, 300_000);

afterAll(async () => {
  const proxyExit = await stopService(proxy);
  await stopService(compute);
  await standIn?.stop().catch(() => undefined);
  await rpc?.close();
  if (connection) {
    // Our per-host queues and exchange; the shared `compute` queue may serve other tests' exchanges.
    const model = await connection.connect(10_000);
    const ch = await model.createChannel();
    for (const q of [`compute.${computeHost}`, `compute.${echoHost}`]) await ch.deleteQueue(q).catch(() => undefined);
    await ch.deleteExchange(exchange).catch(() => undefined);
    await ch.close().catch(() => undefined);
  }
  await connection?.close();
  for (const g of guests) await g.fixture.stop().catch(() => undefined);
  await db?.close();
  if (adminPg) {
    await adminPg.query(`drop database if exists "${dbName}" with (force)`).catch(() => undefined);
    await adminPg.end();
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  expect(proxyExit).toBe(0);
}, 120_000);

describe.skipIf(!chromiumAvailable())('novamon-novncproxy end to end', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('opens the URL get_vnc_console hands out and shows the guest\'s screen', async () => {
    const guest = guests[0] as Guest;
    const info = await vncConsole(guest);
    expect(info.access_url).toBe(`${baseUrl}?path=%3Ftoken%3D${info.token}`);

    const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
    try {
      await page.goto(info.access_url);
      // The page reports noVNC's connect event on <html data-state>; a selector wait needs no eval (CSP).
      await page.locator('html[data-state="connected"]').waitFor({ state: 'attached', timeout: 60_000 });
      expect(await page.textContent('#status')).toMatch(/^Connected/);
      // The canvas shows the text screen (720x400): not blank, several colours (text on black).
      await expect
        .poll(async () => (await sampleCanvas(page))?.lit ?? 0, { timeout: 60_000, interval: 1000 })
        .toBeGreaterThan(200);
      const sample = await sampleCanvas(page);
      expect(sample?.width).toBe(720);
      expect(sample?.height).toBe(400);
      expect(sample?.distinctColours).toBeGreaterThan(1);
      // Give the boot sector a moment past SeaBIOS's own lines, then keep what the user sees.
      await sleep(3000);
      await page.screenshot({ path: path.join(ARTIFACTS, 'consoleproxy-browser.png') });
      expect(await vncClients(guest)).toBe(1);
    } finally {
      await page.close();
    }
    await expect.poll(() => vncClients(guest), { timeout: 15_000 }).toBe(0);
  });

  it('shows a refused console as failed, and the guest sees nobody', async () => {
    const guest = guests[1] as Guest;
    const info = await vncConsole(guest);
    const forged = info.access_url.replace(info.token, randomUUID());
    const page = await browser.newPage();
    try {
      await page.goto(forged);
      await page.locator('html[data-state="failed"]').waitFor({ state: 'attached', timeout: 30_000 });
    } finally {
      await page.close();
    }
    expect(await vncClients(guest)).toBe(0);
  });
});

describe('novamon-novncproxy refusals against a real guest', () => {
  it('refuses no token, forged, expired, other-type tokens and a bad Origin before the VNC server sees anything', async () => {
    const guest = guests[1] as Guest;
    const info = await vncConsole(guest);
    const tokens = new KnexConsoleAuthTokenRepository(db);
    const expired = randomUUID();
    await tokens.create(
      { token: expired, consoleType: 'novnc', host: info.host, port: info.port, instanceUuid: guest.uuid, accessUrlBase: baseUrl, ttlSeconds: 60 },
      { now: new Date(Date.now() - 3600_000) },
    );
    const serial = randomUUID();
    await tokens.create({ token: serial, consoleType: 'serial', host: info.host, port: info.port, instanceUuid: guest.uuid, ttlSeconds: 600 });

    const origin = { Origin: `http://127.0.0.1:${proxyPort}` };
    const cases: Array<[string, string, Record<string, string>]> = [
      ['no token', '/', origin],
      ['forged token', `/?token=${randomUUID()}`, origin],
      ['expired token', `/?token=${expired}`, origin],
      ['serial token', `/?token=${serial}`, origin],
      ['bad Origin', `/?token=${info.token}`, { Origin: 'http://evil.example.com' }],
      ['https Origin for an http console', `/?token=${info.token}`, { Origin: `https://127.0.0.1:${proxyPort}` }],
    ];
    for (const [what, url, headers] of cases) {
      await expect(openWs(url, headers), what).rejects.toThrow('HTTP 403');
    }
    expect(await vncClients(guest)).toBe(0);

    // The same real token with a proper Origin does get through: the refusals above were the checks.
    const ws = await openWs(`/?path=${encodeURIComponent(`?token=${info.token}`)}`, origin);
    const session = await rfbSession(ws);
    expect(session.width).toBe(720);
    expect(await vncClients(guest)).toBe(1);
    expect(await closeWs(ws)).toBe(1000);
    await expect.poll(() => vncClients(guest), { timeout: 15_000 }).toBe(0);

    // Refusals are logged with the instance uuid and never with the token.
    await sleep(500);
    const proxyLog = logs['proxy']?.join('') ?? '';
    expect(proxyLog).toContain(`"instanceUuid":"${guest.uuid}"`);
    expect(proxyLog).toContain('"reason":"wrong-console-type"');
    for (const t of [info.token, expired, serial]) expect(proxyLog).not.toContain(t);
  });
});

describe('novamon-novncproxy under load', () => {
  it('carries 50 concurrent bridges (real guests and echo servers) and closes them all cleanly', async () => {
    // A bridge that stays silent has twice gone unexplained in full-suite runs: keep what the services said.
    onTestFailed(() => {
      const tail = (name: 'compute' | 'proxy') => logs[name]?.join('').split('\n').slice(-80).join('\n');
      writeFileSync(path.join(ARTIFACTS, 'consoleproxy-load-failure.log'), `--- proxy\n${tail('proxy')}\n--- compute\n${tail('compute')}\n`);
    });
    // Echo servers standing in for VNC servers (they greet first, as RFB servers do) on a second "compute
    // host" that answers validate_console_port.
    const echoSockets = new Set<net.Socket>();
    let echoAccepted = 0;
    const echoServers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const s = net.createServer((c) => {
          echoAccepted++;
          echoSockets.add(c);
          c.on('close', () => echoSockets.delete(c));
          c.on('error', () => undefined);
          c.write('RFB 003.008\n');
          c.pipe(c);
        });
        await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
        return s;
      }),
    );
    const echoPorts = new Set(echoServers.map((s) => (s.address() as AddressInfo).port));
    const endpoint: RpcEndpoint = {
      version: '6.1',
      namespace: null,
      hasMethod: (m) => m === 'validate_console_port',
      handle: (m, _ctx, args) => (m === 'validate_console_port' ? Promise.resolve(echoPorts.has(Number(args['port']))) : undefined),
    };
    standIn = new RpcServer({
      connection, exchange, topic: 'compute', server: echoHost, dispatcher: new RpcDispatcher([endpoint]),
      prefetch: 64, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60_000, logger: silentLogger(),
    });
    await standIn.start();

    const instances = new KnexInstanceRepository(db);
    const tokens = new KnexConsoleAuthTokenRepository(db);
    const echoUuid = randomUUID();
    await instances.upsertFromRpc({ uuid: echoUuid, id: 0x7f00000 + Math.floor(Math.random() * 0xffff), name: `echo-${run}`, host: echoHost });
    const ports = [...echoPorts];
    const echoTokens = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const token = randomUUID();
        await tokens.create({ token, consoleType: 'novnc', host: '127.0.0.1', port: ports[i % ports.length] as number, instanceUuid: echoUuid, accessUrlBase: baseUrl, ttlSeconds: 600 });
        return token;
      }),
    );
    const guestTokens = await Promise.all(Array.from({ length: 10 }, (_, i) => vncConsole(guests[i % 2] as Guest).then((c) => c.token)));

    const pid = proxy.pid as number;
    const rssBefore = rssKiB(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssKiB(pid))), 100);
    onTestFinished(() => clearInterval(sampler));
    const started = Date.now();
    const origin = { Origin: `http://127.0.0.1:${proxyPort}` };
    // Each socket gets its reader as soon as it opens: a guest's VNC server greets at once, and bytes that
    // arrive before a 'message' listener exists are gone.
    const opened = await Promise.all([...echoTokens, ...guestTokens].map((t) => openWs(`/?token=${t}`, origin).then((ws) => ({ ws, r: readerOf(ws) }))));
    const sockets = opened.map((o) => o.ws);
    const echoWs = opened.slice(0, 40);
    const guestWs = opened.slice(40);

    const payloadBytes = 256 * 1024;
    const echoResults = echoWs.map(async ({ ws, r }) => {
      expect((await r.take(12)).toString()).toBe('RFB 003.008\n');
      const payload = randomBytes(payloadBytes);
      for (let off = 0; off < payload.length; off += 16 * 1024) ws.send(payload.subarray(off, off + 16 * 1024));
      const back = await r.take(payload.length, 60_000);
      return createHash('sha256').update(back).digest('hex') === createHash('sha256').update(payload).digest('hex');
    });
    const guestResults = guestWs.map(({ ws, r }) => rfbSession(ws, r));
    expect(await Promise.all(echoResults)).toEqual(Array(40).fill(true));
    const sessions = await Promise.all(guestResults);
    for (const s of sessions) expect(s.width).toBe(720);
    expect(echoAccepted).toBe(40);
    expect(await vncClients(guests[0] as Guest)).toBe(5);
    expect(await vncClients(guests[1] as Guest)).toBe(5);
    const rssOpen = rssKiB(pid);

    const codes = await Promise.all(sockets.map(closeWs));
    clearInterval(sampler);
    const elapsedMs = Date.now() - started;
    expect(codes).toEqual(Array(50).fill(1000));
    await expect.poll(() => echoSockets.size, { timeout: 15_000 }).toBe(0);
    await expect.poll(() => vncClients(guests[0] as Guest), { timeout: 15_000 }).toBe(0);
    await expect.poll(() => vncClients(guests[1] as Guest), { timeout: 15_000 }).toBe(0);
    const rssAfter = rssKiB(pid);

    const report = {
      bridges: 50, echoBridges: 40, guestBridges: 10, echoBytesEachWay: payloadBytes, elapsedMs,
      proxyRssKiB: { beforeOpen: rssBefore, allOpen: rssOpen, peak: rssPeak, afterClose: rssAfter },
    };
    writeFileSync(path.join(ARTIFACTS, 'consoleproxy-load.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log(`consoleproxy load: ${JSON.stringify(report)}`);
    for (const s of echoServers) s.close();
  });
});

describe('novamon-novncproxy shutdown', () => {
  it('SIGTERM closes open consoles with 1001, lets go of the guest and exits 0', async () => {
    const guest = guests[0] as Guest;
    const info = await vncConsole(guest);
    const ws = await openWs(`/?token=${info.token}`);
    await rfbSession(ws);
    expect(await vncClients(guest)).toBe(1);
    const code = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    const exited = new Promise<number | null>((r) => proxy.once('exit', (c) => r(c)));
    proxy.kill('SIGTERM');
    expect(await code).toBe(1001);
    expect(await exited).toBe(0);
    await expect.poll(() => vncClients(guest), { timeout: 15_000 }).toBe(0);
    expect(logs['proxy']?.join('')).toContain('console proxy stopped');
  });
});
