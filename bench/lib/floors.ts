// The floors nobody can beat, measured in the same run as the service: a raw QMP client on a guest's
// monitor socket (QEMU's own answer time), a single-row INSERT through pg (PostgreSQL's), and the read of
// a console log's tail (the file system's). The AMQP floor is in amqp-floor.ts (it needs a second process).

import { createHash, randomUUID } from 'node:crypto';
import net from 'node:net';
import { open } from 'node:fs/promises';
import pg from 'pg';

const MAX_CONSOLE_BYTES = 100 * 1024;

/** Race a promise against a timer (every network await here is bounded). */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A deliberately minimal QMP client: commands written bare (no id: QEMU reads its monitor a byte at a
 * time, so each byte costs it), replies taken in order, commands pipelined. It does no validation beyond
 * that, so its round trip is QEMU's plus the socket's.
 */
export class RawQmp {
  private buf = '';
  private readonly pending: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private greeted: (() => void) | null = null;

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('close', () => {
      for (const p of this.pending.splice(0)) p.reject(new Error('QMP socket closed'));
    });
    sock.on('error', () => undefined);
  }

  static async connect(socketPath: string, timeoutMs = 10_000): Promise<RawQmp> {
    const sock = net.createConnection(socketPath);
    const q = new RawQmp(sock);
    const greeting = new Promise<void>((resolve, reject) => {
      q.greeted = resolve;
      sock.once('error', reject);
    });
    await bounded(greeting, timeoutMs, `QMP greeting on ${socketPath}`);
    await q.execute('qmp_capabilities', undefined, timeoutMs);
    return q;
  }

  execute(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
    const msg = JSON.stringify(args ? { execute: command, arguments: args } : { execute: command });
    const reply = new Promise<unknown>((resolve, reject) => this.pending.push({ resolve, reject }));
    this.sock.write(msg);
    // A timed-out command keeps its place: its reply, when it comes, is still the next one in order.
    return bounded(reply, timeoutMs, `QMP ${command}`);
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as Record<string, unknown>;
      if ('QMP' in msg) {
        this.greeted?.();
        this.greeted = null;
        continue;
      }
      if (!('return' in msg) && !('error' in msg)) continue; // an event
      const p = this.pending.shift();
      if (!p) continue;
      if ('error' in msg) p.reject(new Error(`QMP error: ${JSON.stringify(msg['error'])}`));
      else p.resolve(msg['return']);
    }
  }
}

/**
 * The QMP commands get_instance_diagnostics sends (src/virt/qemu/diagnostics.ts collectGuestStats): the
 * guest model answers the rest, so only the block counters are asked for. A guest whose balloon driver
 * reports stats adds a qom-get of guest-stats at most once per stats period; the fixture guests have none.
 */
export const DIAGNOSTICS_QMP_BATCH: readonly [string, Record<string, unknown>?][] = [['query-blockstats']];

export async function qmpDiagnosticsBatch(q: RawQmp): Promise<void> {
  // Optional commands may fail on some QEMU builds; the floor counts their round trip either way.
  await Promise.all(DIAGNOSTICS_QMP_BATCH.map(([cmd, args]) => q.execute(cmd, args).catch(() => undefined)));
}

/**
 * A single-row INSERT of a console token row (the same table shape as console_auth_tokens, copied with
 * LIKE ... INCLUDING ALL so indexes match) through a pg pool of the service's size.
 */
export class PgInsertFloor {
  private constructor(private readonly pool: pg.Pool, private readonly table: string) {}

  static async open(connectionString: string, poolSize: number): Promise<PgInsertFloor> {
    // Committed asynchronously, as novamon commits its console tokens (src/db/console-auth-token-repository.ts).
    const pool = new pg.Pool({ connectionString, max: poolSize, connectionTimeoutMillis: 10_000, statement_timeout: 10_000, options: '-c synchronous_commit=off' });
    const table = 'bench_floor_console_auth_tokens';
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (LIKE console_auth_tokens INCLUDING ALL)`);
    // Warm every pooled connection so the first measured inserts do not pay for the connect.
    await Promise.all(Array.from({ length: poolSize }, () => pool.query('SELECT 1')));
    return new PgInsertFloor(pool, table);
  }

  async insertOne(instanceUuid: string): Promise<void> {
    const token = randomUUID();
    await this.pool.query(
      `INSERT INTO ${this.table} (token_hash, console_type, host, port, internal_access_path, instance_uuid, access_url_base, expires)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
      [createHash('sha256').update(token).digest('hex'), 'novnc', '127.0.0.1', 5900, null, instanceUuid, 'http://127.0.0.1:6080/vnc_auto.html', Math.floor(Date.now() / 1000) + 600],
    );
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The tail of a console log as Nova's libvirt driver (and novamon's qemu driver) reads it. */
export async function readConsoleTail(file: string): Promise<number> {
  const h = await open(file, 'r');
  try {
    const { size } = await h.stat();
    const length = Math.min(size, MAX_CONSOLE_BYTES);
    const buf = Buffer.alloc(length);
    const { bytesRead } = await h.read(buf, 0, length, size - length);
    return bytesRead;
  } finally {
    await h.close();
  }
}
