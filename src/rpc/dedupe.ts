// Remembers recent `_unique_id`s so a redelivered or re-published message is never run twice (we ack after the
// work, so redelivery after a lost connection is normal). Bounded twice: by id count (LRU) and by the bytes
// of cached replies, which a duplicate call gets re-sent.
//
// A cached reply is kept as its UTF-8 bytes, not as the string the reply was built as: a reply assembled
// by concatenation is a tree of small V8 string pieces that can take ten times its length in heap, so a
// budget counted in characters held hundreds of MiB after a burst of diagnostics calls. Bytes in a Buffer
// are exactly what the budget counts.

export type DedupeEntry =
  | { state: 'inflight'; waiters: Array<(reply: string | null) => void> }
  | { state: 'done'; reply: string | null };

type StoredEntry = { state: 'inflight'; waiters: Array<(reply: string | null) => void> } | { state: 'done'; reply: Buffer | null };

export interface DedupeOptions {
  /** Ids remembered. */
  maxIds?: number;
  /** Total UTF-8 bytes of cached reply fragments; the oldest replies are dropped (their ids kept) beyond it. */
  maxReplyBytes?: number;
  /** A single reply larger than this (UTF-8 bytes) is not cached. */
  maxOneReplyBytes?: number;
}

export class DedupeCache {
  private readonly entries = new Map<string, StoredEntry>();
  /** Ids whose entry holds a cached reply, oldest first, with the reply's size. */
  private readonly withReply = new Map<string, number>();
  private bytes = 0;
  private readonly maxIds: number;
  private readonly maxReplyBytes: number;
  private readonly maxOneReplyBytes: number;

  constructor(opts: DedupeOptions = {}) {
    this.maxIds = opts.maxIds ?? 16384;
    this.maxReplyBytes = opts.maxReplyBytes ?? 16 * 1024 * 1024;
    this.maxOneReplyBytes = opts.maxOneReplyBytes ?? 256 * 1024;
  }

  get size(): number {
    return this.entries.size;
  }

  /** UTF-8 bytes of the replies cached now. */
  get replyBytes(): number {
    return this.bytes;
  }

  get(id: string): DedupeEntry | undefined {
    const e = this.entries.get(id);
    if (e?.state !== 'done') return e;
    return { state: 'done', reply: e.reply === null ? null : e.reply.toString('utf8') };
  }

  /** Mark an id as being worked on. Returns false if the id is already known (in flight or done). */
  begin(id: string): boolean {
    if (this.entries.has(id)) return false;
    this.entries.set(id, { state: 'inflight', waiters: [] });
    this.evictIds();
    return true;
  }

  /** Record the outcome (a reply fragment for calls, null for casts) and wake duplicates that waited. */
  finish(id: string, reply: string | null): void {
    const prev = this.entries.get(id);
    // Every character is at least one UTF-8 byte: a longer string is over the limit without encoding it.
    const bytes = reply !== null && reply.length <= this.maxOneReplyBytes ? Buffer.from(reply, 'utf8') : null;
    const keep = bytes !== null && bytes.length <= this.maxOneReplyBytes ? bytes : null;
    this.dropReply(id);
    // Re-insert so a finished id counts as recent.
    this.entries.delete(id);
    this.entries.set(id, { state: 'done', reply: keep });
    if (keep !== null) {
      this.withReply.set(id, keep.length);
      this.bytes += keep.length;
      this.evictReplies();
    }
    this.evictIds();
    if (prev?.state === 'inflight') for (const w of prev.waiters) w(reply);
  }

  /** Forget an id (its work was abandoned and it should run when redelivered); waiting duplicates get null. */
  forget(id: string): void {
    const prev = this.entries.get(id);
    this.dropReply(id);
    this.entries.delete(id);
    if (prev?.state === 'inflight') for (const w of prev.waiters) w(null);
  }

  private dropReply(id: string): void {
    const n = this.withReply.get(id);
    if (n === undefined) return;
    this.withReply.delete(id);
    this.bytes -= n;
    const e = this.entries.get(id);
    if (e?.state === 'done') e.reply = null;
  }

  private evictReplies(): void {
    for (const id of this.withReply.keys()) {
      if (this.bytes <= this.maxReplyBytes) break;
      this.dropReply(id);
    }
  }

  private evictIds(): void {
    while (this.entries.size > this.maxIds) {
      // Oldest first; never evict work in flight (it would run twice if redelivered now).
      let evicted = false;
      for (const [id, e] of this.entries) {
        if (e.state === 'inflight') continue;
        this.dropReply(id);
        this.entries.delete(id);
        evicted = true;
        break;
      }
      if (!evicted) break;
    }
  }
}
