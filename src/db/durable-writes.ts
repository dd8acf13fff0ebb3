// The rule the database stores follow while the database may be away: a write that must not be lost
// goes straight to the database while it answers and nothing is spooled (order), else into the fsynced
// spool; a read falls back to what this host last read or wrote.

import type { Logger } from '../logging.js';
import { DatabaseUnavailable, isDatabaseUnavailable } from './availability.js';
import type { SpooledOp } from './spool-replayer.js';
import type { WriteSpool } from './spool.js';

export interface SpoolStats {
  pending: number;
  bytes: number;
  capacityBytes: number;
  replayed: number;
  spooled: number;
  deadLettered: number;
}

export class DurableWrites {
  private spooled = 0;

  /** Without a spool every write goes to the database and fails with it. */
  constructor(
    private readonly spool: WriteSpool | null,
    private readonly log: Logger | undefined,
    private readonly deadLettered: () => number = () => 0,
  ) {}

  /**
   * Runs `direct`, or spools the write as `op` with `args` when the database is away or earlier writes
   * still wait. `refs` are ids the write points at; one not yet applied forces the spool. `fromSeq`
   * gives the caller's answer for a spooled write (a local id for writes that create a row).
   */
  async write<T>(op: SpooledOp, args: Record<string, unknown>, refs: number[], direct: () => Promise<T>, fromSeq: (seq: number) => T, opts: { spool?: boolean } = {}): Promise<T> {
    const s = this.spool;
    if (!s) return direct();
    const mustSpool = opts.spool === true || s.pending > 0 || refs.some((id) => s.isUnresolved(id));
    if (!mustSpool) {
      try {
        return await direct();
      } catch (err) {
        if (!isDatabaseUnavailable(err)) throw err;
        this.log?.warn({ err: String(err), op }, 'database unavailable; spooling the write');
      }
    }
    const seq = await s.append(op, args);
    this.spooled++;
    return fromSeq(seq);
  }

  /**
   * A write that has no spooled form of its own (several rows in one statement): runs it when it may
   * go straight to the database; null when it may not or the database is away, and then the caller
   * makes the same rows with write() calls, `{ spool: true }` when this returned null after trying.
   * `refs` are ids the rows point at, as for write(): one not yet applied means not now.
   */
  async direct<T>(fn: () => Promise<T>, refs: readonly number[] = []): Promise<{ value: T } | { value: null; tried: boolean }> {
    const s = this.spool;
    if (!s) return { value: await fn() };
    if (this.behind || refs.some((id) => s.isUnresolved(id))) return { value: null, tried: false };
    try {
      return { value: await fn() };
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      this.log?.warn({ err: String(err) }, 'database unavailable; spooling the writes');
      return { value: null, tried: true };
    }
  }

  /** The database id for `id`, which may be a local id handed out for a spooled write. */
  resolveId(id: number): number {
    return this.spool ? this.spool.resolveId(id) : id;
  }

  /** True while writes wait in the spool: the database is behind this host's own writes. */
  get behind(): boolean {
    return this.spool !== null && this.spool.pending > 0;
  }

  /** A read from the database, or from `fromCache` while the database is behind or away. */
  async read<T>(what: string, fromDb: () => Promise<T>, fromCache: () => T | undefined): Promise<T> {
    if (this.behind) {
      const cached = fromCache();
      if (cached !== undefined) return cached;
    }
    try {
      return await fromDb();
    } catch (err) {
      if (!isDatabaseUnavailable(err)) throw err;
      const cached = fromCache();
      if (cached !== undefined) return cached;
      throw new DatabaseUnavailable(what, { cause: err });
    }
  }

  stats(): SpoolStats | null {
    const s = this.spool;
    return s ? { pending: s.pending, bytes: s.bytes, capacityBytes: s.capacityBytes, replayed: s.replayed, spooled: this.spooled, deadLettered: this.deadLettered() } : null;
  }

  /** Tries to replay the spool for a moment, then closes it. */
  async close(): Promise<void> {
    await this.spool?.close();
  }
}
