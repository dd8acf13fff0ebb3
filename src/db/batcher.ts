// A small write-behind batcher: rows added within `maxDelayMs` of each other (or until `maxRows` are
// waiting) go to the database as one multi-row write, and each add() resolves only after the write that
// carried its row has committed, so callers keep "awaited = durable" while paying one round trip per batch.

import type { Logger } from '../logging.js';

export interface BatcherOptions<T> {
  /**
   * Longest time a row waits for companions before its batch is written. 0 = group commit: the rows
   * added in the same turn of the event loop, or while the previous batch is being written, go together,
   * and a lone row waits for nothing but the end of the current turn.
   */
  maxDelayMs: number;
  /** A batch is written as soon as this many rows wait; also the largest batch written. */
  maxRows: number;
  /** Writes one batch (one INSERT/transaction); rejecting fails every add() of that batch. */
  write: (rows: T[]) => Promise<void>;
  logger?: Logger;
}

interface Entry<T> {
  row: T;
  enqueuedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  done: Promise<void>;
}

export class BatcherClosed extends Error {
  override readonly name = 'BatcherClosed';
  constructor() {
    super('write-behind batcher is closed');
  }
}

export class WriteBehindBatcher<T> {
  private queue: Entry<T>[] = [];
  private timer: { cancel: () => void } | undefined;
  private writing: Promise<void> | undefined;
  private forced = false;
  private closed = false;
  private batches = 0;
  private rowsWritten = 0;

  constructor(private readonly opts: BatcherOptions<T>) {
    if (!(opts.maxRows >= 1) || !(opts.maxDelayMs >= 0)) throw new Error('batcher needs maxRows >= 1 and maxDelayMs >= 0');
  }

  /** Queues a row; resolves after it was written, rejects with the write's error. */
  add(row: T): Promise<void> {
    if (this.closed) return Promise.reject(new BatcherClosed());
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.queue.push({ row, enqueuedAt: Date.now(), resolve, reject, done });
    if (this.queue.length >= this.opts.maxRows) this.kick();
    else this.arm();
    return done;
  }

  /** Rows waiting or being written. */
  get pending(): number {
    return this.queue.length;
  }

  get stats(): { batches: number; rows: number } {
    return { batches: this.batches, rows: this.rowsWritten };
  }

  /** Writes everything queued now without waiting for the delay; resolves when that is done. */
  async flush(): Promise<void> {
    const waiting = this.queue.map((e) => e.done);
    if (this.writing) waiting.push(this.writing);
    this.forced = true;
    this.kick();
    await Promise.allSettled(waiting);
  }

  /** Refuses new rows, writes the queued ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private arm(): void {
    if (this.timer || this.writing || this.queue.length === 0) return;
    const oldest = this.queue[0] as Entry<T>;
    const fire = (): void => {
      this.timer = undefined;
      this.kick(true);
    };
    // setTimeout(0) would still cost about a millisecond per lone row; setImmediate costs nothing.
    if (this.opts.maxDelayMs === 0) {
      const t = setImmediate(fire);
      this.timer = { cancel: () => clearImmediate(t) };
      return;
    }
    const wait = Math.max(0, oldest.enqueuedAt + this.opts.maxDelayMs - Date.now());
    const t = setTimeout(fire, wait);
    this.timer = { cancel: () => clearTimeout(t) };
  }

  private kick(timerFired = false): void {
    if (this.writing) return; // the running drain loop picks the rows up
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
    }
    this.writing = this.drain(timerFired).finally(() => {
      this.writing = undefined;
      this.arm();
    });
  }

  private async drain(timerFired: boolean): Promise<void> {
    let due = timerFired;
    while (this.queue.length > 0) {
      const oldest = this.queue[0] as Entry<T>;
      const ripe = due || this.forced || this.queue.length >= this.opts.maxRows || Date.now() - oldest.enqueuedAt >= this.opts.maxDelayMs;
      if (!ripe) break;
      due = false;
      const batch = this.queue.splice(0, this.opts.maxRows);
      try {
        await this.opts.write(batch.map((e) => e.row));
        this.batches++;
        this.rowsWritten += batch.length;
        for (const e of batch) e.resolve();
      } catch (err) {
        this.opts.logger?.error({ err, rows: batch.length }, 'batched write failed');
        for (const e of batch) e.reject(err);
      }
    }
    if (this.queue.length === 0) this.forced = false;
  }
}
