// Runs handlers with the ordering the endpoints ask for: tasks with the same key one after another in arrival
// order, different keys (and unkeyed tasks) concurrently, and never more than `limit` running at once.

export class TaskScheduler {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly chains = new Map<string, { tail: Promise<void>; pending: number }>();

  /** limit <= 0 means unbounded. */
  constructor(private readonly limit: number) {}

  get active(): number {
    return this.running;
  }

  /** Schedule `task`; the returned promise settles when it has run (it never rejects: tasks handle their errors). */
  run(key: string | null, task: () => Promise<void>): Promise<void> {
    if (key === null) return this.limited(task);
    let chain = this.chains.get(key);
    if (!chain) {
      chain = { tail: Promise.resolve(), pending: 0 };
      this.chains.set(key, chain);
    }
    chain.pending++;
    const c = chain;
    const done = c.tail.then(() => this.limited(task));
    c.tail = done.then(() => {
      if (--c.pending === 0 && this.chains.get(key) === c) this.chains.delete(key);
    });
    return done;
  }

  private async limited(task: () => Promise<void>): Promise<void> {
    // A finishing task hands its slot straight to the next waiter, so `running` never exceeds the limit.
    if (this.limit > 0 && this.running >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.running++;
    try {
      await task();
    } catch {
      // Tasks report their own failures; a throw here must not stall the key's chain.
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
