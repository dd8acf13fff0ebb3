// Remembers recent `_unique_id`s so a redelivered or re-published message is never run twice (we ack after the
// work, so redelivery after a lost connection is normal). Bounded twice: by id count (LRU) and by the bytes
// of cached replies, which a duplicate call gets re-sent.

export type DedupeEntry =
  | { state: 'inflight'; waiters: Array<(reply: string | null) => void> }
  | { state: 'done'; reply: string | null };

export interface DedupeOptions {
  /** Ids remembered. */
  maxIds?: number;
  /** Total characters of cached reply fragments; the oldest replies are dropped (their ids kept) beyond it. */
  maxReplyChars?: number;
  /** A single reply larger than this is not cached. */
  maxOneReplyChars?: number;
}

export class DedupeCache {
  private readonly entries = new Map<string, DedupeEntry>();
  /** Ids whose entry holds a cached reply, oldest first, with the reply's size. */
  private readonly withReply = new Map<string, number>();
  private replyChars = 0;
  private readonly maxIds: number;
  private readonly maxReplyChars: number;
  private readonly maxOneReplyChars: number;

  constructor(opts: DedupeOptions = {}) {
    this.maxIds = opts.maxIds ?? 16384;
    this.maxReplyChars = opts.maxReplyChars ?? 16 * 1024 * 1024;
    this.maxOneReplyChars = opts.maxOneReplyChars ?? 256 * 1024;
  }

  get size(): number {
    return this.entries.size;
  }

  get(id: string): DedupeEntry | undefined {
    return this.entries.get(id);
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
    const keep = reply !== null && reply.length <= this.maxOneReplyChars ? reply : null;
    this.dropReply(id);
    // Re-insert so a finished id counts as recent.
    this.entries.delete(id);
    this.entries.set(id, { state: 'done', reply: keep });
    if (keep !== null) {
      this.withReply.set(id, keep.length);
      this.replyChars += keep.length;
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
    this.replyChars -= n;
    const e = this.entries.get(id);
    if (e?.state === 'done') e.reply = null;
  }

  private evictReplies(): void {
    for (const id of this.withReply.keys()) {
      if (this.replyChars <= this.maxReplyChars) break;
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
