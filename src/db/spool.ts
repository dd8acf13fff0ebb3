// A bounded, crash-safe write spool: writes that must not be lost while the database is away are appended
// to `<dir>/journal.jsonl` (one JSON line per write, fsynced per batch before the caller hears "durable"),
// replayed in order by an applier once the database answers, and checkpointed so a restart replays only
// what had not reached the database. It knows nothing of the tables; the applier (src/db/spool-replayer.ts) does.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { NovaException } from '../exception.js';
import type { Logger } from '../logging.js';

/** New work is refused (a failure reply) rather than dropped when the spool holds `maxBytes` already. */
export class SpoolFull extends NovaException {
  override readonly code = 503;
  constructor(bytes: number, maxBytes: number) {
    super(
      `The database is unavailable and the write spool is full (${bytes} of ${maxBytes} bytes); refusing new work until the database returns`,
      { err: 'database unavailable and write spool full' },
    );
  }
  // Nova has no class for this; InternalError is one every Nova client can rebuild.
  override get className(): string {
    return 'InternalError';
  }
}

/** The spool's file could not be written or fsynced: the write is not durable and must be refused. */
export class SpoolWriteFailed extends NovaException {
  override readonly code = 503;
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`The database is unavailable and the write spool could not make the write durable: ${reason}`, { err: reason }, options);
  }
  override get className(): string {
    return 'InternalError';
  }
}

export interface SpoolEntry {
  seq: number;
  op: string;
  args: unknown;
  /** When the write happened (ISO 8601), for the log and for rows that can carry their own time. */
  at: string;
}

/** What the applier reports: ids created by entries (keyed by their seq), used to translate local ids. */
export type ApplyResult = Map<number, number>;

export interface SpoolApplier {
  /**
   * Writes `entries` to the database in order. Rejects with an error that `isUnavailable` recognises when
   * the database is still away (the batch is retried later); any other entry failure is the applier's to
   * handle (it dead-letters that entry) so one bad row never blocks the rest.
   */
  apply(entries: readonly SpoolEntry[], resolveId: (id: number) => number): Promise<ApplyResult>;
  isUnavailable(err: unknown): boolean;
}

export interface SpoolOptions {
  dir: string;
  /** Bound on the journal's unapplied bytes; default 64 MiB. */
  maxBytes?: number;
  logger: Logger;
  /** First delay between replay attempts while the database is away (doubles up to 2 s); default 500 ms. */
  retryIntervalMs?: number;
  /** Entries per replay transaction; default 64. */
  batchSize?: number;
}

interface Checkpoint {
  /** Highest seq that reached the database. */
  applied: number;
  /** Highest seq ever handed out: local ids stay unique across truncations and restarts. */
  lastSeq: number;
  /** Local id (negative seq of the entry that created the row) -> database id, for unapplied references. */
  ids: Record<string, number>;
}

interface Waiter {
  line: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const JOURNAL = 'journal.jsonl';
const CHECKPOINT = 'checkpoint.json';
const ID_MEMORY = 100_000;

/** A local id stands for a row the database has not created yet; it is the negative seq of its entry. */
export function isLocalId(id: number): boolean {
  return Number.isInteger(id) && id < 0;
}

export class WriteSpool {
  private readonly log: Logger;
  private readonly maxBytes: number;
  private readonly retryIntervalMs: number;
  private readonly batchSize: number;
  private readonly journalPath: string;
  private readonly checkpointPath: string;
  private fh: FileHandle | null = null;
  /** Entries durable in the journal, not yet in the database, oldest first. */
  private readonly queue: Array<SpoolEntry & { bytes: number }> = [];
  private waiters: Waiter[] = [];
  private queuedBytes = 0;
  private ckpt: Checkpoint;
  /** Local id -> database id, also for ids the journal no longer mentions (callers may still hold them). */
  private readonly ids = new Map<number, number>();
  private fileChain: Promise<void> = Promise.resolve();
  private flushScheduled = false;
  private applier: SpoolApplier | null = null;
  private draining: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private closed = false;
  replayed = 0;
  private readonly onDrainedListeners: Array<() => void> = [];

  private constructor(opts: SpoolOptions) {
    this.log = opts.logger.child({ component: 'db-spool' });
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.retryIntervalMs = opts.retryIntervalMs ?? 500;
    this.retryDelay = this.retryIntervalMs;
    this.batchSize = opts.batchSize ?? 64;
    mkdirSync(opts.dir, { recursive: true });
    this.journalPath = path.join(opts.dir, JOURNAL);
    this.checkpointPath = path.join(opts.dir, CHECKPOINT);
    this.ckpt = { applied: 0, lastSeq: 0, ids: {} };
  }

  /** Opens (or creates) the spool in `dir` and loads what a previous process left unapplied. */
  static openSync(opts: SpoolOptions): WriteSpool {
    const s = new WriteSpool(opts);
    s.load();
    return s;
  }

  private load(): void {
    try {
      const c = JSON.parse(readFileSync(this.checkpointPath, 'utf8')) as Partial<Checkpoint>;
      this.ckpt = { applied: Number(c.applied) || 0, lastSeq: Number(c.lastSeq) || 0, ids: c.ids ?? {} };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: String(err) }, 'spool checkpoint unreadable; replaying the whole journal');
    }
    for (const [k, v] of Object.entries(this.ckpt.ids)) this.ids.set(Number(k), v);
    let text = '';
    try {
      text = readFileSync(this.journalPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    let torn = 0;
    for (const line of lines) {
      if (line === '') continue;
      let e: SpoolEntry;
      try {
        e = JSON.parse(line) as SpoolEntry;
      } catch {
        // Only a write cut short by a crash can be torn, and its caller was never told it was durable.
        torn++;
        continue;
      }
      this.ckpt.lastSeq = Math.max(this.ckpt.lastSeq, e.seq);
      if (e.seq <= this.ckpt.applied) continue;
      const bytes = Buffer.byteLength(line) + 1;
      this.queue.push({ ...e, bytes });
      this.queuedBytes += bytes;
    }
    // Rewrite the journal with exactly the unapplied entries, so a torn tail never sits before new lines.
    const fd = openSync(`${this.journalPath}.tmp`, 'w');
    try {
      for (const e of this.queue) writeSync(fd, `${JSON.stringify({ seq: e.seq, op: e.op, args: e.args, at: e.at })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(`${this.journalPath}.tmp`, this.journalPath);
    this.fsyncDir();
    if (this.queue.length > 0 || torn > 0) {
      this.log.warn({ pending: this.queue.length, bytes: this.queuedBytes, torn }, 'spooled database writes found from an earlier run; replaying them');
    }
  }

  /** Entries waiting for the database (durable or being made durable). */
  get pending(): number {
    return this.queue.length + this.waiters.length;
  }

  get bytes(): number {
    return this.queuedBytes + this.waiters.reduce((n, w) => n + Buffer.byteLength(w.line) + 1, 0);
  }

  get capacityBytes(): number {
    return this.maxBytes;
  }

  /** The database id a local id became, or the id itself when it is not local or not applied yet. */
  resolveId(id: number): number {
    return isLocalId(id) ? (this.ids.get(id) ?? id) : id;
  }

  /** True when `id` is local and its row has not reached the database yet. */
  isUnresolved(id: number): boolean {
    return isLocalId(id) && !this.ids.has(id);
  }

  /**
   * Appends one write; resolves with its seq once it is fsynced (its local id is -seq). Throws SpoolFull when
   * the bound is reached and SpoolWriteFailed when the file cannot be written: never a silent drop.
   */
  append(op: string, args: unknown): Promise<number> {
    if (this.closed) return Promise.reject(new SpoolWriteFailed('the spool is closed'));
    const seq = ++this.ckpt.lastSeq;
    const entry: SpoolEntry = { seq, op, args, at: new Date().toISOString() };
    const line = JSON.stringify(entry);
    const bytes = Buffer.byteLength(line) + 1;
    if (this.bytes + bytes > this.maxBytes) return Promise.reject(new SpoolFull(this.bytes, this.maxBytes));
    return new Promise<number>((resolve, reject) => {
      this.waiters.push({
        line,
        resolve: () => {
          this.queue.push({ ...entry, bytes });
          this.queuedBytes += bytes;
          resolve(seq);
          this.kick();
        },
        reject,
      });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // Group commit: every append of this tick shares one write and one fsync.
        setImmediate(() => {
          this.flushScheduled = false;
          this.serialize(() => this.flush());
        });
      }
    });
  }

  /** Starts replaying into `applier` now and whenever something is appended. */
  start(applier: SpoolApplier): void {
    this.applier = applier;
    this.kick();
  }

  /** Resolves when nothing is pending (or after `timeoutMs`); true when drained. */
  async waitDrained(timeoutMs: number): Promise<boolean> {
    if (this.pending === 0) return true;
    this.kick();
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(this.pending === 0), timeoutMs);
      this.onDrainedListeners.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Tries a last replay for up to `drainTimeoutMs`, then closes the journal; what is left replays at next start. */
  async close(drainTimeoutMs = 2000): Promise<void> {
    if (this.closed) return;
    if (this.pending > 0 && this.applier) await this.waitDrained(drainTimeoutMs);
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.draining?.catch(() => undefined);
    await this.fileChain.catch(() => undefined);
    for (const w of this.waiters.splice(0)) w.reject(new SpoolWriteFailed('the spool is closed'));
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    if (this.queue.length > 0) this.log.warn({ pending: this.queue.length }, 'spool closed with writes pending; they replay at the next start');
  }

  private serialize(fn: () => Promise<void>): Promise<void> {
    const next = this.fileChain.then(fn, fn);
    this.fileChain = next.catch(() => undefined);
    return next;
  }

  private async handle(): Promise<FileHandle> {
    this.fh ??= await open(this.journalPath, 'a');
    return this.fh;
  }

  private async flush(): Promise<void> {
    const batch = this.waiters.splice(0);
    if (batch.length === 0) return;
    try {
      const fh = await this.handle();
      await fh.write(batch.map((w) => `${w.line}\n`).join(''));
      await fh.datasync();
    } catch (err) {
      this.log.error({ err: String(err), entries: batch.length }, 'spool write failed; refusing those writes');
      // The file may now end in a partial line; reopen so the next append starts cleanly after it.
      await this.fh?.close().catch(() => undefined);
      this.fh = null;
      for (const w of batch) w.reject(new SpoolWriteFailed(String(err), { cause: err }));
      return;
    }
    for (const w of batch) w.resolve();
  }

  private kick(): void {
    if (this.draining || !this.applier || this.closed || this.queue.length === 0) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.draining = this.drain().finally(() => {
      this.draining = null;
    });
  }

  private async drain(): Promise<void> {
    const applier = this.applier as SpoolApplier;
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.slice(0, this.batchSize);
      let created: ApplyResult;
      try {
        created = await applier.apply(batch, (id) => this.resolveId(id));
      } catch (err) {
        if (!applier.isUnavailable(err)) this.log.error({ err: String(err) }, 'spool replay failed unexpectedly; retrying');
        else this.log.debug({ err: String(err), pending: this.queue.length }, 'database still unavailable; spool waits');
        this.retryTimer = setTimeout(() => this.kick(), this.retryDelay);
        this.retryTimer.unref();
        this.retryDelay = Math.min(2000, this.retryDelay * 2);
        return;
      }
      this.retryDelay = this.retryIntervalMs;
      for (const [seq, id] of created) this.rememberId(-seq, id);
      const last = (batch[batch.length - 1] as SpoolEntry).seq;
      this.queue.splice(0, batch.length);
      for (const e of batch) this.queuedBytes -= e.bytes;
      this.replayed += batch.length;
      this.ckpt.applied = last;
      await this.serialize(() => this.commitProgress()).catch((err: unknown) =>
        this.log.error({ err: String(err) }, 'spool checkpoint not written; a restart may replay the last batch again'),
      );
      if (this.queue.length === 0) this.log.info({ replayed: this.replayed }, 'spooled database writes replayed');
    }
    if (this.pending === 0) for (const l of this.onDrainedListeners.splice(0)) l();
  }

  private rememberId(localId: number, id: number): void {
    if (this.ids.size >= ID_MEMORY) {
      const oldest = this.ids.keys().next().value as number;
      this.ids.delete(oldest);
    }
    this.ids.set(localId, id);
    this.ckpt.ids[String(localId)] = id;
  }

  /** Checkpoint, and when everything is applied, an empty journal (it is the spool's size on disk). */
  private async commitProgress(): Promise<void> {
    const empty = this.queue.length === 0 && this.waiters.length === 0;
    if (empty) {
      // Every id the journal mentioned is applied; callers still holding local ids find them in memory.
      this.ckpt.ids = {};
    }
    this.writeCheckpoint();
    if (empty) {
      await this.fh?.close().catch(() => undefined);
      this.fh = await open(this.journalPath, 'w');
      await this.fh.datasync();
    }
  }

  private writeCheckpoint(): void {
    const tmp = `${this.checkpointPath}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify(this.ckpt));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.checkpointPath);
    this.fsyncDir();
  }

  private fsyncDir(): void {
    try {
      const fd = openSync(path.dirname(this.journalPath), 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is still atomic there.
    }
  }
}
