// Shared pieces of the resilience suite and the soak: a novamon-compute process spawned from dist/ with a
// temporary configuration, a per-test database, an RPC caller with a paced load generator, process
// statistics (RSS, open fds) and the report writer. No vitest imports, so scripts/soak.ts can use it.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, type Database } from '../../src/db/knex.js';
import { syncSchema } from '../../src/db/migrate.js';
import { pino } from 'pino';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { MessagingTimeout, RpcClient } from '../../src/rpc/client.js';
import { instancePrimitive } from '../../src/rpc/objects/instance.js';
import { binArgs } from '../fixtures/launcher.js';

export const repoRoot = path.resolve(import.meta.dirname, '../..');
export const resultsDir = path.join(repoRoot, 'bench/results');

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export interface ComputeConfig {
  host: string;
  exchange: string;
  transportUrl: string;
  /** '' = embedded PGlite under statePath. */
  dbUrl: string;
  statePath: string;
  instancesPath: string;
  commandTimeoutSeconds?: number;
  durableQueues?: boolean;
  opsPort?: number;
  /** Extra INI text appended as is. */
  extra?: string;
}

export function writeComputeConfig(dir: string, c: ComputeConfig): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'novamon.conf');
  writeFileSync(
    file,
    [
      '[DEFAULT]',
      `host = ${c.host}`,
      `transport_url = ${c.transportUrl}`,
      `control_exchange = ${c.exchange}`,
      'compute_driver = qemu',
      `state_path = ${c.statePath}`,
      `instances_path = ${c.instancesPath}`,
      'log_format = json',
      'sync_power_state_interval = -1',
      '[database]',
      `connection = ${c.dbUrl}`,
      '[monitor]',
      `command_timeout = ${c.commandTimeoutSeconds ?? 10}`,
      '[oslo_messaging_rabbit]',
      `amqp_durable_queues = ${c.durableQueues ? 'true' : 'false'}`,
      // Fast first retries so recovery is measured in seconds, the jittered backoff still applies.
      'rabbit_retry_interval = 0.5',
      'rabbit_retry_backoff = 0.5',
      'rabbit_interval_max = 2',
      'heartbeat_timeout_threshold = 10',
      '[oslo_middleware]',
      `enabled = ${c.opsPort ? 'true' : 'false'}`,
      `port = ${c.opsPort ?? 8775}`,
      c.extra ?? '',
      '',
    ].join('\n'),
  );
  return file;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

/** novamon-compute running from dist/ (bin/novamon-compute.js), its JSON log collected. */
export class ComputeProcess {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null; at: number } | null = null;

  private constructor(readonly child: ChildProcess) {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.raw.push(line);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.lines.push({ msg: line });
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal, at: performance.now() };
        resolve(this.exitInfo);
      }),
    );
  }

  static async start(configFile: string, opts: { readyTimeoutMs?: number } = {}): Promise<ComputeProcess> {
    const child = spawn(process.execPath, [...binArgs('novamon-compute.js'), '--config-file', configFile], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new ComputeProcess(child);
    try {
      await p.waitForLog(/novamon-compute ready/, opts.readyTimeoutMs ?? 90_000);
    } catch (err) {
      p.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${p.raw.slice(-30).join('\n')}`, { cause: err });
    }
    return p;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitInfo === null) this.child.kill(signal);
  }

  /** Resolves with the first log line (from index `from`) whose msg matches. */
  async waitForLog(re: RegExp, timeoutMs: number, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => typeof l.msg === 'string' && re.test(l.msg));
      if (hit) return hit;
      if (this.exitInfo) throw new Error(`novamon-compute exited (${this.exitInfo.code ?? this.exitInfo.signal}) before logging ${re}`);
      if (Date.now() > deadline) throw new Error(`novamon-compute did not log ${re} within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  count(re: RegExp): number {
    return this.lines.filter((l) => typeof l.msg === 'string' && re.test(l.msg)).length;
  }

  /** Lines at error level (50) or above. */
  errors(): LogLine[] {
    return this.lines.filter((l) => (l.level ?? 0) >= 50);
  }

  async stop(): Promise<void> {
    if (!this.alive) return;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }
}

/** A fresh database on the private PostgreSQL server, with novamon's schema. Returns its URL. */
export async function createTestDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = await createDatabase({ connection: serverUrl, statePath: '/nonexistent', poolSize: 1, logger: silentLogger() });
  try {
    await admin.knex.raw(`create database "${name}"`);
  } finally {
    await admin.close();
  }
  const url = serverUrl.replace(/\/[^/]*$/, `/${name}`);
  const db = await openTestDb(url);
  try {
    await syncSchema(db);
  } finally {
    await db.close();
  }
  return url;
}

export function openTestDb(url: string): Promise<Database> {
  // Short timeouts: the tests poll while the server may be down.
  return createDatabase({ connection: url, statePath: '/nonexistent', poolSize: 2, logger: silentLogger(), connectTimeoutMs: 2000, statementTimeoutMs: 5000 });
}

/** A caller on its own connection, as Nova's API or conductor would be. */
export class Caller {
  readonly conn: AmqpConnectionManager;
  readonly client: RpcClient;
  /** The connection's and client's log lines (reconnects, channel and reply queue renewals), for a failing test to print. */
  readonly logLines: string[] = [];

  constructor(
    url: string,
    readonly exchange: string,
    readonly host: string,
    timeoutMs = 10_000,
    /** The exchange's flags, as the service declares them (e.g. durable under rabbit_quorum_queue). */
    flags: { durableQueues?: boolean; quorumQueues?: boolean } = {},
  ) {
    const logger = pino({ level: 'info' }, { write: (line: string) => void this.logLines.push(line.trimEnd()) });
    this.conn = new AmqpConnectionManager({ transportUrl: url, logger, connectionName: uniqueName('resilience_caller'), retryIntervalMs: 200, retryBackoffMs: 200, intervalMaxMs: 1000, heartbeatSeconds: 10 });
    this.client = new RpcClient({ connection: this.conn, exchange, timeoutMs, logger, transientQueueTtlMs: 600_000, ...flags });
  }

  call(method: string, args: Record<string, unknown> = {}, opts: { timeoutMs?: number; admin?: boolean; requestId?: string } = {}): Promise<unknown> {
    const ctx = { isAdmin: opts.admin ?? false, ...(opts.requestId ? { requestId: opts.requestId } : {}) };
    return this.client.call({ topic: 'compute', server: this.host, version: '6.0' }, ctx, method, args, opts.timeoutMs === undefined ? undefined : { timeoutMs: opts.timeoutMs });
  }

  cast(method: string, args: Record<string, unknown>, opts: { requestId?: string } = {}): Promise<void> {
    return this.client.cast({ topic: 'compute', server: this.host, version: '6.0' }, opts.requestId ? { requestId: opts.requestId } : {}, method, args);
  }

  async close(): Promise<void> {
    await this.client.close().catch(() => undefined);
    await this.conn.close().catch(() => undefined);
  }
}

export function instanceArg(guest: { uuid: string | null }, id: number, host: string): Record<string, unknown> {
  return instancePrimitive({ uuid: guest.uuid ?? undefined, id, host, node: host, vmState: 'active', powerState: 1 }) as unknown as Record<string, unknown>;
}

export type Outcome = 'ok' | 'failure' | 'timeout';
export interface Sample {
  /** Index of the call (the argument `fn` got). */
  i: number;
  /** ms since the load started. */
  t: number;
  ms: number;
  outcome: Outcome;
  error?: string;
}

/** Calls `fn` at a steady rate (open loop: a slow answer does not slow the sender), recording every outcome. */
export class PacedLoad {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inflight = new Set<Promise<void>>();
  private t0 = 0;
  private sent = 0;

  constructor(
    private readonly fn: (i: number) => Promise<unknown>,
    private readonly perSecond: number,
  ) {}

  start(): this {
    this.t0 = performance.now();
    const tickMs = 10;
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - this.t0) / 1000) * this.perSecond);
      while (this.sent < due) this.fire(this.sent++);
    }, tickMs);
    return this;
  }

  get elapsedMs(): number {
    return performance.now() - this.t0;
  }

  private fire(i: number): void {
    const started = performance.now();
    const p = this.fn(i).then(
      () => void this.samples.push({ i, t: started - this.t0, ms: performance.now() - started, outcome: 'ok' }),
      (err: unknown) =>
        void this.samples.push({
          i,
          t: started - this.t0,
          ms: performance.now() - started,
          outcome: err instanceof MessagingTimeout ? 'timeout' : 'failure',
          error: String(err).slice(0, 200),
        }),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Stops sending and waits for every call in flight to end (they all carry a timeout). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled([...this.inflight]);
  }

  summary(): { sent: number; answered: number; failed: number; timedOut: number; p50Ms: number; p99Ms: number; maxMs: number } {
    const ok = this.samples.filter((s) => s.outcome === 'ok').map((s) => s.ms);
    return {
      sent: this.sent,
      answered: ok.length,
      failed: this.samples.filter((s) => s.outcome === 'failure').length,
      timedOut: this.samples.filter((s) => s.outcome === 'timeout').length,
      p50Ms: round(percentile(ok, 0.5)),
      p99Ms: round(percentile(ok, 0.99)),
      maxMs: round(Math.max(0, ...ok)),
    };
  }
}

export function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** RSS (KiB) and open file descriptors of a process, from /proc. */
export function procStats(pid: number): { rssKb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssKb, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Reads one gauge or counter sum from novamon-compute's /metrics. */
export async function metric(opsPort: number, name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${opsPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && /^[a-z_]+(\{[^}]*\})? /.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, intervalMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(intervalMs);
  }
}

export interface ReportSection {
  promise: string;
  /** Rows of (figure, value, limit/expectation). */
  figures: Array<[string, string | number, string]>;
  details?: Record<string, unknown>;
}

/** Writes bench/results/resilience-<name>.json and re-renders bench/results/resilience-report.md from every section. */
export function writeReport(name: string, section: ReportSection): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `resilience-${name}.json`), `${JSON.stringify({ ...section, at: new Date().toISOString() }, null, 2)}\n`);
  const parts = ['# novamon resilience report', '', 'Written by `npm run test:resilience` (each section by its test file). Faults are injected into a private RabbitMQ node, a private PostgreSQL server and fixture QEMU guests.', ''];
  for (const file of readdirSync(resultsDir).filter((f) => /^resilience-\d+[a-z]?-.*\.json$/.test(f)).sort()) {
    const s = JSON.parse(readFileSync(path.join(resultsDir, file), 'utf8')) as ReportSection & { at: string };
    parts.push(`## ${s.promise}`, '', `_measured ${s.at}_`, '', '| figure | measured | promise |', '|---|---|---|');
    for (const [k, v, limit] of s.figures) parts.push(`| ${k} | ${v} | ${limit} |`);
    parts.push('');
  }
  writeFileSync(path.join(resultsDir, 'resilience-report.md'), parts.join('\n'));
}
