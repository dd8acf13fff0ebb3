// novamon-compute's periodic housekeeping, on Nova's instance_delete_interval: expired console tokens are
// deleted (nova-compute's _cleanup_expired_console_auth_tokens, through the conductor in a Nova cloud) and
// this host's diagnostics snapshots past their retention are dropped. A round that fails is logged and the
// next one tries again; rounds never overlap.

import type { Logger } from '../logging.js';
import type { ConsoleTokenStore, DiagnosticsStore } from './tokens.js';

export interface HousekeepingSettings {
  host: string;
  /** Between rounds; 0 = no rounds. */
  intervalMs: number;
  /** Diagnostics snapshots older than this are dropped; 0 = kept for ever. */
  diagnosticsRetentionMs: number;
}

export interface HousekeepingRound {
  expiredTokens: number | null;
  diagnosticsDropped: number;
}

export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(
    private readonly stores: { tokens: ConsoleTokenStore; diagnostics: DiagnosticsStore },
    private readonly settings: HousekeepingSettings,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'housekeeping' });
  }

  /** Starts the rounds, the first one interval from now (as Nova's periodic tasks start). */
  start(): this {
    if (this.settings.intervalMs > 0) {
      this.timer = setInterval(() => void this.tick(), this.settings.intervalMs);
      this.timer.unref();
    }
    return this;
  }

  /** One round now; each part fails on its own (a conductor that is away does not stop the retention). */
  async runOnce(now = new Date()): Promise<HousekeepingRound> {
    const [tokens, diagnostics] = await Promise.allSettled([
      this.stores.tokens.cleanExpired(),
      this.settings.diagnosticsRetentionMs > 0
        ? this.stores.diagnostics.deleteOlderThan(new Date(now.getTime() - this.settings.diagnosticsRetentionMs), this.settings.host)
        : Promise.resolve(0),
    ]);
    if (tokens.status === 'rejected') this.log.warn({ err: String(tokens.reason) }, 'cleaning expired console tokens failed; next round retries');
    if (diagnostics.status === 'rejected') this.log.warn({ err: String(diagnostics.reason) }, 'dropping old diagnostics snapshots failed; next round retries');
    const round = {
      expiredTokens: tokens.status === 'fulfilled' ? tokens.value : null,
      diagnosticsDropped: diagnostics.status === 'fulfilled' ? diagnostics.value : 0,
    };
    if (round.diagnosticsDropped > 0 || (round.expiredTokens ?? 0) > 0) this.log.info(round, 'housekeeping');
    return round;
  }

  private tick(): Promise<void> {
    this.running ??= this.runOnce()
      .then(() => undefined)
      .finally(() => (this.running = null));
    return this.running;
  }

  /**
   * Stops the rounds, and waits for one under way for at most `waitMs`: a round is idempotent, and one stuck
   * on a conductor that does not answer must not eat the shutdown's budget.
   */
  async close(waitMs = 2000): Promise<void> {
    clearInterval(this.timer);
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }
}
