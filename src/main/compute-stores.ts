// Puts the compute layer's database stores together: the knex repositories, the crash-safe write spool
// and its replayer when a spool directory is given (writes that must not be lost wait there, fsynced,
// while the database is away: docs/resilience.md), and the instance cache reads fall back to.

import type { ComputeStoresShape } from '../compute/tokens.js';
import {
  DatabaseActionStore,
  DatabaseConsoleTokenStore,
  DatabaseDiagnosticsStore,
  DatabaseFaultStore,
  DatabaseInstanceStore,
  DatabaseMonitorAuditStore,
} from '../db/compute-stores.js';
import { KnexConsoleAuthTokenRepository } from '../db/console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from '../db/diagnostics-repository.js';
import { DurableWrites, type SpoolStats } from '../db/durable-writes.js';
import { KnexInstanceActionRepository } from '../db/instance-action-repository.js';
import { InstanceCache } from '../db/instance-cache.js';
import { KnexInstanceFaultRepository } from '../db/instance-fault-repository.js';
import { KnexInstanceRepository } from '../db/instance-repository.js';
import type { Database } from '../db/knex.js';
import { KnexMonitorAuditRepository } from '../db/monitor-audit-repository.js';
import { SpoolReplayer } from '../db/spool-replayer.js';
import { WriteSpool } from '../db/spool.js';
import type { Logger } from '../logging.js';

export type { SpoolStats };

export interface ComputeStoresWithClose extends ComputeStoresShape {
  /** Flushes batched writes, tries to replay the spool for a moment, closes it. */
  close(): Promise<void>;
  /** The spool's state, or null when the stores run without one. */
  spoolStats(): SpoolStats | null;
}

export interface ComputeStoresOptions {
  /** Directory of the crash-safe write spool (`<state_path>/spool`); omitted = no spool, writes fail with the database. */
  spoolDir?: string;
  /** Bound on the spool; default 64 MiB. */
  spoolMaxBytes?: number;
  /** First replay retry delay while the database is away; default 500 ms. */
  spoolRetryIntervalMs?: number;
}

/** The spool, started with its replayer, when a directory (and a logger to report it) is given. */
function openSpool(db: Database, log: Logger | undefined, options: ComputeStoresOptions): DurableWrites {
  if (options.spoolDir === undefined || !log) return new DurableWrites(null, log);
  const spool = WriteSpool.openSync({
    dir: options.spoolDir,
    logger: log,
    ...(options.spoolMaxBytes === undefined ? {} : { maxBytes: options.spoolMaxBytes }),
    ...(options.spoolRetryIntervalMs === undefined ? {} : { retryIntervalMs: options.spoolRetryIntervalMs }),
  });
  const replayer = new SpoolReplayer(db, log);
  spool.start(replayer);
  return new DurableWrites(spool, log, () => replayer.deadLettered);
}

export function createComputeStores(db: Database, logger?: Logger, options: ComputeStoresOptions = {}): ComputeStoresWithClose {
  const log = logger?.child({ component: 'compute-stores' });
  const writes = openSpool(db, log, options);
  const diagnostics = new DatabaseDiagnosticsStore(new KnexDiagnosticsRepository(db), writes);
  const tokens = new DatabaseConsoleTokenStore(new KnexConsoleAuthTokenRepository(db));
  const instances = new DatabaseInstanceStore(new KnexInstanceRepository(db), writes, new InstanceCache(), log);
  return {
    instances,
    faults: new DatabaseFaultStore(new KnexInstanceFaultRepository(db), writes),
    actions: new DatabaseActionStore(new KnexInstanceActionRepository(db), writes, instances),
    tokens,
    diagnostics,
    audit: new DatabaseMonitorAuditStore(new KnexMonitorAuditRepository(db), writes),
    spoolStats: () => writes.stats(),
    close: async () => {
      await tokens.close();
      await diagnostics.close();
      await writes.close();
    },
  };
}
