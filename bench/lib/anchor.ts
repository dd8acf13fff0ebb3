// The Nova-stack anchor as the benchmark runs it: the files in ../shared/anchor/ next to the repository
// (never a copy), its PostgreSQL database (setup_db.sh), its libvirt guests (domains.py create N, always
// destroyed afterwards) and anchor_compute.py serving compute.<host> on a private exchange.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bounded } from './floors.js';
import { REPO_ROOT } from './service.js';

export const ANCHOR_DIR = path.resolve(REPO_ROOT, '..', 'shared', 'anchor');
const PYTHON = process.env['NOVAMON_BENCH_PYTHON'] ?? '/usr/bin/python3';
const FILES = ['anchor_compute.py', 'domains.py', 'setup_db.sh'];

/** A libvirt guest of the anchor: Nova's name and uuid, the id its name carries. */
export interface AnchorGuest {
  name: string;
  uuid: string;
  id: number;
}

/** Fails with a clear message when the anchor is not where the benchmark looks for it. */
export function requireAnchor(): void {
  const missing = FILES.filter((f) => !existsSync(path.join(ANCHOR_DIR, f)));
  if (missing.length > 0) {
    throw new Error(
      `--compare-nova runs the Nova-stack anchor from ${ANCHOR_DIR} (../shared/anchor/ next to the repository), ` +
        `but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not there; put the anchor there or run without --compare-nova`,
    );
  }
  if (!existsSync(PYTHON)) throw new Error(`--compare-nova needs ${PYTHON} (the anchor is Python: python3-nova, python3-libvirt, python3-psycopg2, python3-lxml)`);
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: ANCHOR_DIR, timeout: timeoutMs }, (err, stdout, stderr) =>
      err ? reject(new Error(`${path.basename(args[0] ?? cmd)} ${args.slice(1).join(' ')} failed: ${err.message}\n${stderr.trim()}`)) : resolve(stdout),
    );
  });
}

/** The anchor's role, database and table (idempotent). */
export async function setupAnchorDatabase(): Promise<void> {
  await run('bash', [path.join(ANCHOR_DIR, 'setup_db.sh')], 120_000);
}

/** Defines and starts `count` libvirt guests (instance-000000b0…); returns them as domains.py lists them. */
export async function createAnchorDomains(count: number): Promise<AnchorGuest[]> {
  await run(PYTHON, [path.join(ANCHOR_DIR, 'domains.py'), 'create', String(count)], 600_000);
  const listing = await run(PYTHON, [path.join(ANCHOR_DIR, 'domains.py'), 'list'], 60_000);
  const guests: AnchorGuest[] = [];
  for (const line of listing.split('\n')) {
    const [name, uuid] = line.trim().split(/\s+/);
    const m = name ? /^instance-([0-9a-f]{8})$/.exec(name) : null;
    if (m && uuid) guests.push({ name: name as string, uuid, id: parseInt(m[1] as string, 16) });
  }
  if (guests.length < count) throw new Error(`domains.py create ${count} left ${guests.length} guests:\n${listing}`);
  return guests.slice(0, count);
}

export async function destroyAnchorDomains(): Promise<void> {
  await run(PYTHON, [path.join(ANCHOR_DIR, 'domains.py'), 'destroy'], 300_000);
}

/** anchor_compute.py serving compute.<host> on `exchange`; its oslo config lives in a private directory. */
export class AnchorProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly configDir: string,
    private readonly output: () => string,
  ) {}

  static async start(host: string, exchange: string, transportUrl: string, shutdownTimeout = 5): Promise<AnchorProcess> {
    const configDir = await mkdtemp(path.join(os.tmpdir(), 'novamon-bench-anchor-'));
    const args = [path.join(ANCHOR_DIR, 'anchor_compute.py'), host, '--exchange', exchange, '--transport-url', transportUrl];
    args.push('--shutdown-timeout', String(shutdownTimeout), '--config-dir', configDir);
    const child = spawn(PYTHON, args, { cwd: ANCHOR_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (text = (text + d.toString()).slice(-20_000)));
    const p = new AnchorProcess(child, configDir, () => text);
    try {
      await bounded(
        new Promise<void>((resolve, reject) => {
          const check = () => text.includes('anchor_compute ready') && resolve();
          child.stdout?.on('data', check);
          child.once('exit', (code) => reject(new Error(`anchor_compute.py exited (${code}): ${text.trim().split('\n').slice(-5).join(' | ')}`)));
        }),
        120_000,
        'starting anchor_compute.py',
      );
    } catch (err) {
      await p.stop();
      throw err;
    }
    return p;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  logTail(): string {
    return this.output().trim().split('\n').slice(-10).join('\n');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.child.kill('SIGTERM');
      await bounded(exited, 20_000, 'stopping anchor_compute.py').catch(() => this.child.kill('SIGKILL'));
    }
    await rm(this.configDir, { recursive: true, force: true });
  }
}
