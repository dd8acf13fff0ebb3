// novamon-compute as the benchmark runs it: a private PostgreSQL database (created, synced with
// novamon-manage db sync, dropped afterwards), a temp config (qemu driver, or libvirt for --compare-nova;
// our instances_path, a unique exchange and host, JSON logs at warn) and the real binary,
// bin/novamon-compute.js, as a child process.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { bounded } from './floors.js';
import { freePort } from '../../test/fixtures/scratch.js';
import { shebangNodeFlags } from '../../test/fixtures/launcher.js';

export const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const PG_ADMIN_URL = process.env['NOVAMON_BENCH_PG'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const AMQP_URL = process.env['NOVAMON_BENCH_AMQP'] ?? 'amqp://guest:guest@127.0.0.1:5672/';
export const TRANSPORT_URL = AMQP_URL.replace(/^amqp:/, 'rabbit:');

export interface ServiceSetup {
  tmpDir: string;
  instancesPath: string;
  host: string;
  exchange: string;
  databaseName: string;
  databaseUrl: string;
  configFile: string;
  opsPort: number;
  poolSize: number;
  profileDir: string | null;
}

export async function createDatabase(name: string): Promise<string> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function dropDatabase(name: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** A database and a config for novamon-compute with `driver` (libvirt: the local libvirtd's guests). */
export async function prepareService(tmpDir: string, instancesPath: string, profileDir: string | null, driver: 'qemu' | 'libvirt' = 'qemu'): Promise<ServiceSetup> {
  const suffix = randomBytes(4).toString('hex');
  const host = `bench-${suffix}`;
  const exchange = `novamon_bench_${suffix}`;
  const databaseName = `novamon_bench_${suffix}`;
  const databaseUrl = await createDatabase(databaseName);
  const opsPort = await freePort();
  const poolSize = 5;
  const configFile = path.join(tmpDir, 'novamon-bench.conf');
  await writeFile(
    configFile,
    [
      '# written by npm run bench; removed with its temp directory',
      '[DEFAULT]',
      `host = ${host}`,
      `transport_url = ${TRANSPORT_URL}`,
      `control_exchange = ${exchange}`,
      `compute_driver = ${driver}`,
      `state_path = ${path.join(tmpDir, 'state')}`,
      `instances_path = ${instancesPath}`,
      'log_format = json',
      // Lifecycle latency must come from QMP events, not from a periodic sync that happens to run.
      'sync_power_state_interval = -1',
      '',
      '[database]',
      `connection = ${databaseUrl}`,
      `max_pool_size = ${poolSize}`,
      '',
      '[libvirt]',
      'connection_uri = qemu:///system',
      '',
      '[monitor]',
      'passthrough_allowed_commands = query-status,stop,cont',
      '',
      '[vnc]',
      'enabled = true',
      '',
      '[oslo_middleware]',
      'enabled = true',
      'listen = 127.0.0.1',
      `port = ${opsPort}`,
      '',
    ].join('\n'),
  );
  await manage(configFile, ['db', 'sync']);
  return { tmpDir, instancesPath, host, exchange, databaseName, databaseUrl, configFile, opsPort, poolSize, profileDir };
}

function manage(configFile: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(REPO_ROOT, 'bin', 'novamon-manage.js'), '--config-file', configFile, ...args], {
      cwd: REPO_ROOT,
      timeout: 120_000,
      env: { ...process.env, NOVAMON_LOG_LEVEL: 'warn' },
    }, (err, stdout, stderr) => (err ? reject(new Error(`novamon-manage ${args.join(' ')} failed: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

export class ServiceProcess {
  private constructor(
    readonly setup: ServiceSetup,
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {}

  /**
   * `variant`, for `npm run bench:ab`: node flags after the launcher's (the last of a flag wins), environment,
   * and the built checkout to run novamon-compute from (another commit's, say; default this one).
   */
  static start(setup: ServiceSetup, variant: { nodeArgs?: string[]; env?: Record<string, string>; root?: string } = {}): ServiceProcess {
    const logFile = path.join(setup.tmpDir, 'novamon-compute.log');
    const out = createWriteStream(logFile);
    const nodeArgs = setup.profileDir ? ['--cpu-prof', '--cpu-prof-dir', setup.profileDir] : [];
    const root = variant.root ?? REPO_ROOT;
    const script = path.join(root, 'bin', 'novamon-compute.js');
    const child = spawn(process.execPath, [...nodeArgs, ...shebangNodeFlags(script), ...(variant.nodeArgs ?? []), script, '--config-file', setup.configFile], {
      cwd: root,
      env: { ...process.env, NOVAMON_LOG_LEVEL: process.env['NOVAMON_BENCH_LOG_LEVEL'] ?? 'warn', ...variant.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    return new ServiceProcess(setup, child, logFile);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('novamon-compute did not start');
    return this.child.pid;
  }

  /**
   * Resolves once the service answers get_host_uptime through `caller`; fails as soon as it exits, or when
   * it has not answered within `timeoutMs`.
   */
  async waitAnswering(caller: { hostUptime(timeoutMs: number): Promise<unknown> }, label = 'novamon-compute', timeoutMs = 120_000): Promise<void> {
    const readyBy = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`${label} exited during start-up:\n${this.logTail()}`);
      try {
        await caller.hostUptime(2000);
        return;
      } catch (err) {
        if (Date.now() > readyBy) throw new Error(`${label} did not answer get_host_uptime within ${timeoutMs / 1000} s (${String(err)}):\n${this.logTail()}`, { cause: err });
      }
    }
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Prometheus text from the service's /metrics (ops listener). */
  async metrics(): Promise<Map<string, number>> {
    const res = await bounded(fetch(`http://127.0.0.1:${this.setup.opsPort}/metrics`), 5000, 'GET /metrics');
    const text = await res.text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || !line.trim()) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (m) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
    }
    return out;
  }

  /** SIGTERM and wait (the CPU profile, when asked for, is written on the way out). */
  async stop(): Promise<number | null> {
    if (this.exited) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill('SIGTERM');
    try {
      return await bounded(exited, 20_000, 'stopping novamon-compute');
    } catch {
      this.child.kill('SIGKILL');
      return null;
    }
  }
}

/** First value of a metric whose name (with labels, as printed) starts with `name`. */
export function metricValue(metrics: Map<string, number>, name: string): number | null {
  for (const [k, v] of metrics) if (k === name || k.startsWith(`${name}{`)) return v;
  return null;
}
