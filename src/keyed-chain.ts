// Work queued under one key runs one at a time, in the order it was queued; work under different keys
// runs side by side. Used wherever one guest's events or power actions must not overtake each other.

export class KeyedChain {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `work` after everything queued under `key` before it has settled; its own outcome is returned. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(work);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.finally(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Resolves once everything queued so far has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }
}
