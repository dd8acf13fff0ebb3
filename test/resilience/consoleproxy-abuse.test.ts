// Promises 4c and 4d: hostile console traffic. Seeded fast-check inputs (test/resilience/consoleproxy-fuzz.ts)
// against a real novamon-novncproxy (4c) and a real novamon-serialproxy (4d) process on PostgreSQL, one at a
// time: HTTP requests to its files, WebSocket upgrades with hostile tokens, Origins and handshakes, and
// hostile frames after a valid upgrade. No input holds the proxy's event loop for 100 ms of CPU (its own
// probe logs every block of 20 ms or more), none crashes it, nothing outside the noVNC package is served
// (a canary beside it), the console stand-in behind the proxy never sees a connection for a refused token
// or Origin, and every session's connection to it is closed before the next input: the serial proxy
// allows one session per port, so a session it failed to release would refuse the next valid one.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { novncPackageDir } from '../../src/consoleproxy/static.js';
import { KnexConsoleAuthTokenRepository } from '../../src/db/console-auth-token-repository.js';
import { KnexInstanceRepository } from '../../src/db/instance-repository.js';
import type { Database } from '../../src/db/knex.js';
import { syncSchema } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcDispatcher, type RpcEndpoint } from '../../src/rpc/dispatcher.js';
import { RpcServer } from '../../src/rpc/server.js';
import { createScratchDatabase, freePort, RABBIT_URL } from '../fixtures/scratch.js';
import { attribute, Canary, loopBlocks, slowest, traversals, type TimedInput } from './abuse.js';
import { send } from './api-fuzz.js';
import { proxyInputArbitrary, sendRaw, type ProxyTokens } from './consoleproxy-fuzz.js';
import { openTestDb, repoRoot, round, uniqueName, waitFor, writeReport } from './harness.js';

const COUNT = Number(process.env['RESILIENCE_PROXY_FUZZ_COUNT'] ?? 1200);
const SEED = Number(process.env['RESILIENCE_FUZZ_SEED'] ?? 20261125);
const BUDGET_CPU_MS = 100;
const GREETING = 'RFB 003.008\n';

/** What differs between the two proxies under the same inputs. */
interface ProxyKind {
  binary: 'novamon-novncproxy' | 'novamon-serialproxy';
  consoleType: 'novnc' | 'serial';
  otherType: 'novnc' | 'serial';
  report: string;
  promise: string;
  /** The console server behind it speaks first (VNC) or waits for the guest (serial). */
  greets: boolean;
  /** What plain HTTP to the console page gets: noVNC's page, or 426 (the serial proxy serves none). */
  pageStatus: 200 | 426;
  baseUrl(port: number): string;
  /** The proxy's own configuration section. */
  section(port: number, baseUrl: string): string[];
}

const KINDS: ProxyKind[] = [
  {
    binary: 'novamon-novncproxy',
    consoleType: 'novnc',
    otherType: 'serial',
    report: '4c-consoleproxy-abuse',
    promise: '4c. Hostile console traffic (novamon-novncproxy)',
    greets: true,
    pageStatus: 200,
    baseUrl: (port) => `http://127.0.0.1:${port}/vnc_auto.html`,
    section: (port, baseUrl) => ['[vnc]', 'novncproxy_host = 127.0.0.1', `novncproxy_port = ${port}`, `novncproxy_base_url = ${baseUrl}`],
  },
  {
    binary: 'novamon-serialproxy',
    consoleType: 'serial',
    otherType: 'novnc',
    report: '4d-serialproxy-abuse',
    promise: '4d. Hostile console traffic (novamon-serialproxy)',
    greets: false,
    pageStatus: 426,
    baseUrl: (port) => `ws://127.0.0.1:${port}/`,
    section: (port, baseUrl) => ['[serial_console]', 'serialproxy_host = 127.0.0.1', `serialproxy_port = ${port}`, `base_url = ${baseUrl}`],
  },
];

interface ConsoleStandIn {
  server: net.Server;
  port: number;
  accepted: () => number;
  /** Connections accepted and not yet closed. */
  open: () => number;
}

/** A console server stand-in: greets like RFB 3.8 (VNC) or not (serial), echoes what it gets, counts connections. */
async function consoleStandIn(greets: boolean): Promise<ConsoleStandIn> {
  let accepted = 0;
  let open = 0;
  const server = net.createServer((c) => {
    accepted++;
    open++;
    c.on('close', () => open--);
    c.on('error', () => undefined);
    if (greets) c.write(GREETING);
    c.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, accepted: () => accepted, open: () => open };
}

/** A session with the valid token still works: the VNC greeting, or (serial) bytes echoed back. */
function stillBridging(port: number, token: string, greets: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/?token=${token}`, ['binary'], { origin: `http://127.0.0.1:${port}` });
    const timer = setTimeout(() => reject(new Error('no bytes from the console in 10 s')), 10_000);
    if (!greets) ws.on('open', () => ws.send(Buffer.from(GREETING)));
    ws.on('message', (d: Buffer) => {
      clearTimeout(timer);
      ws.close();
      resolve(d.toString());
    });
    ws.on('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

describe.each(KINDS)('resilience: hostile console traffic to $binary', (kind) => {
  const run = uniqueName('pfz');
  const exchange = `novamon_${run}`;
  const computeHost = `host-${run}`;
  let workDir: string;
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
  let db: Database;
  let connection: AmqpConnectionManager;
  let standIn: RpcServer;
  let guest: ConsoleStandIn;
  let trap: ConsoleStandIn;
  let proxy: ChildProcess;
  let port: number;
  let canary: Canary;
  let tokens: ProxyTokens;
  let output = '';

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(tmpdir(), 'novamon-pfz-'));
    canary = new Canary(path.join(workDir, 'outside'));
    await canary.watch();
    scratch = await createScratchDatabase('novamon_pfz');
    db = await openTestDb(scratch.url);
    await syncSchema(db);
    [guest, trap] = await Promise.all([consoleStandIn(kind.greets), consoleStandIn(kind.greets)]);

    // The compute host's side of validate_console_port: only the guest stand-in's port is a console.
    connection = new AmqpConnectionManager({ transportUrl: RABBIT_URL, logger: silentLogger(), connectionName: run });
    await connection.connect(10_000);
    const endpoint: RpcEndpoint = {
      version: '6.1',
      namespace: null,
      hasMethod: (m) => m === 'validate_console_port',
      handle: (m, _ctx, args) => (m === 'validate_console_port' ? Promise.resolve(Number(args['port']) === guest.port) : undefined),
    };
    standIn = new RpcServer({ connection, exchange, topic: 'compute', server: computeHost, dispatcher: new RpcDispatcher([endpoint]), prefetch: 16, durableQueues: false, quorumQueues: false, transientQueueTtlMs: 60_000, logger: silentLogger() });
    await standIn.start();

    port = await freePort();
    const baseUrl = kind.baseUrl(port);
    const uuid = randomUUID();
    await new KnexInstanceRepository(db).upsertFromRpc({ uuid, id: 0x7e00000 + Math.floor(Math.random() * 0xffff), name: `pfz-${run}`, host: computeHost });
    const repo = new KnexConsoleAuthTokenRepository(db);
    const base = { instanceUuid: uuid, host: '127.0.0.1', accessUrlBase: baseUrl, ttlSeconds: 3600 };
    tokens = { valid: randomUUID(), expired: randomUUID(), otherType: randomUUID(), stale: randomUUID() };
    const consoleType = kind.consoleType;
    await repo.create({ ...base, token: tokens.valid, consoleType, port: guest.port });
    await repo.create({ ...base, token: tokens.expired, consoleType, port: trap.port, ttlSeconds: 60 }, { now: new Date(Date.now() - 3_600_000) });
    await repo.create({ ...base, token: tokens.otherType, consoleType: kind.otherType, port: trap.port });
    await repo.create({ ...base, token: tokens.stale, consoleType, port: trap.port });

    const conf = path.join(workDir, 'novamon.conf');
    writeFileSync(conf, ['[DEFAULT]', `transport_url = ${RABBIT_URL}`, `control_exchange = ${exchange}`, `state_path = ${workDir}`, 'log_format = json', 'event_loop_warning_ms = 20', 'rpc_response_timeout = 10', '[database]', `connection = ${scratch.url}`, ...kind.section(port, baseUrl), ''].join('\n'));
    proxy = spawn(process.execPath, [path.join(repoRoot, `bin/${kind.binary}.js`), '--config-file', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proxy.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proxy.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(`${kind.binary} ready`, () => proxy.exitCode === null && output.includes(`${kind.binary} ready`), 60_000, 50).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${output.slice(-3000)}`);
    });
  }, 120_000);

  afterAll(async () => {
    canary?.stop();
    if (proxy && proxy.exitCode === null) {
      const exited = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (proxy.exitCode === null) proxy.kill('SIGKILL');
    }
    await standIn?.stop().catch(() => undefined);
    if (connection) {
      const ch = await (await connection.connect(10_000)).createChannel().catch(() => null);
      await ch?.deleteQueue(`compute.${computeHost}`).catch(() => undefined);
      await ch?.deleteExchange(exchange).catch(() => undefined);
      await ch?.close().catch(() => undefined);
      await connection.close();
    }
    guest?.server.close();
    trap?.server.close();
    await db?.close();
    await scratch?.drop().catch(() => undefined);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it(`survives ${COUNT} fuzzed requests, upgrades and frames (seed ${SEED}) within the event-loop budget`, async () => {
    const arb = proxyInputArbitrary({ port, tokens, traversals: traversals(canary, novncPackageDir()), baseScheme: new URL(kind.baseUrl(port)).protocol === 'ws:' ? 'ws' : 'http' });
    const inputs: TimedInput[] = [];
    const outcomes = new Map<string, number>();
    const errors: string[] = [];
    const leaks: string[] = [];
    const wrongConnects: string[] = [];
    const notAccepted: string[] = [];
    const leftOpen: string[] = [];
    let lingering = 0;
    let previous = '';
    /** The previous input's session, if any, is closed at the guest too (bounded by the bridge's 5 s grace). */
    const guestSettled = async () => {
      if (!(await waitFor('no open guest connection', () => guest.open() === 0, 8000, 5).then(() => true, () => false))) leftOpen.push(previous);
    };
    for (const [i, input] of fc.sample(arb, { seed: SEED, numRuns: COUNT }).entries()) {
      const label = `#${i} ${input.label}`;
      await guestSettled();
      previous = label;
      const before = guest.accepted();
      const start = Date.now();
      let status: number;
      if (input.kind === 'http') {
        const answer = await send(`http://127.0.0.1:${port}`, input.req);
        status = answer.status;
        if (status === 0 || (status >= 500 && status !== 503)) errors.push(`${label} → ${status} ${answer.error ?? answer.body.toString().slice(0, 200)}`);
        if (canary.leaks(answer.body)) leaks.push(label);
      } else {
        const answer = await sendRaw(port, input.raw, input.kind === 'frames' ? input.frames : null);
        status = answer.status;
        if (!answer.closedByPeer) lingering++;
        if (canary.leaks(answer.head)) leaks.push(label);
        if (input.kind === 'frames' ? status !== 101 : input.mustAccept && status !== 101) notAccepted.push(`${label} → ${status}`);
        if (input.kind === 'upgrade' && !input.mayConnect && status === 101) errors.push(`${label} → 101`);
      }
      inputs.push({ label, start, end: Date.now() });
      outcomes.set(`${input.kind} ${status}`, (outcomes.get(`${input.kind} ${status}`) ?? 0) + 1);
      // The proxy connects to the guest before it answers 101, so a connection for this input is counted by now.
      if (input.kind === 'upgrade' && !input.mayConnect && guest.accepted() !== before) wrongConnects.push(label);
    }

    await guestSettled();
    // Still serving: the page (the serial proxy has none: 426), and a real console session carrying bytes.
    const page = await fetch(`http://127.0.0.1:${port}/vnc_auto.html?token=${tokens.valid}`, { signal: AbortSignal.timeout(10_000) });
    const greeting = await stillBridging(port, tokens.valid, kind.greets);
    const log = output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const blocks = attribute(inputs, loopBlocks(log));
    const overBudget = blocks.filter((b) => b.block.cpuMs >= BUDGET_CPU_MS);
    const worst = slowest(inputs, blocks);
    const byTrip = [...inputs].sort((a, b) => b.end - b.start - (a.end - a.start))[0]!;

    writeReport(kind.report, {
      promise: kind.promise,
      figures: [
        ['inputs sent (seed)', `${inputs.length} (${SEED})`, `${COUNT} in the test`],
        ['answers by kind and status', [...outcomes.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', '), 'no 500, no dropped HTTP request'],
        [`event-loop blocks ≥ 20 ms logged by ${kind.binary} / over 100 ms CPU`, `${blocks.length} / ${overBudget.length}`, '0 over budget'],
        ['slowest input', worst, `< ${BUDGET_CPU_MS} ms CPU`],
        ['longest round trip', `${byTrip.label.slice(0, 100)} (${byTrip.end - byTrip.start} ms)`, ''],
        ['guest connections for refused tokens or Origins / at the trap port', `${wrongConnects.length} / ${trap.accepted()}`, '0 / 0'],
        ['answers containing the canary / opens of the canary', `${leaks.length} / ${canary.touches}`, '0 / 0'],
        ['connections the test had to drop (proxy kept them open)', lingering, ''],
        ['sessions whose guest connection outlived them by 8 s', leftOpen.length, '0'],
        [`${kind.binary} serving after (page status, console bytes)`, `${page.status}, ${JSON.stringify(greeting.trim())}`, `${kind.pageStatus}, "RFB 003.008"`],
      ],
      details: { overBudget: overBudget.slice(0, 20).map((b) => ({ ...b.block, input: b.input.label })), errors: errors.slice(0, 20), notAccepted: notAccepted.slice(0, 20), leftOpen: leftOpen.slice(0, 20), longestTrips: [...inputs].sort((a, b) => b.end - b.start - (a.end - a.start)).slice(0, 10).map((x) => `${x.label.slice(0, 160)}: ${x.end - x.start} ms`), p50: round(inputs.map((x) => x.end - x.start).sort((a, b) => a - b)[Math.floor(inputs.length / 2)] ?? 0) },
    });

    expect(proxy.exitCode).toBeNull();
    expect(errors).toEqual([]);
    expect(leaks).toEqual([]);
    expect(canary.touches).toBe(0);
    expect(wrongConnects).toEqual([]);
    expect(trap.accepted()).toBe(0);
    expect(notAccepted).toEqual([]);
    expect(leftOpen).toEqual([]);
    expect(overBudget.map((b) => `${b.input.label}: ${b.block.cpuMs} ms CPU`)).toEqual([]);
    expect(page.status).toBe(kind.pageStatus);
    expect(greeting.trim()).toBe('RFB 003.008');
  }, 240_000);
});
