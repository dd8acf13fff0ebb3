// Shared start-up for the binaries: command-line config files, the validated configuration, the
// logger, and the container bindings every service needs (database, driver, compute layer).

import { EventLoopProbe } from '../event-loop-probe.js';
import 'reflect-metadata';
import path from 'node:path';
import type { Container } from 'inversify';
import { loadConfig } from '../config/loader.js';
import type { Config } from '../config/options.js';
import { ComputeLogger, ComputeNotifier, ComputeSettings, ComputeStores, noNotifications, type ComputeSettingsShape, type ComputeStoresShape } from '../compute/tokens.js';
import { ComputeManager } from '../compute/manager.js';
import { InstanceResolver } from '../compute/instance-resolver.js';
import { InstanceRecorder } from '../compute/recorder.js';
import { MonitorPolicy } from '../compute/monitor-policy.js';
import { ComputeForensics } from '../compute/forensics.js';
import { GuestRunEventLog } from '../compute/run-events.js';
import { PowerStateSync } from '../compute/lifecycle.js';
import { createDatabase, Database } from '../db/knex.js';
import { schemaVersion, syncSchema } from '../db/migrate.js';
import { createComputeStores } from './compute-stores.js';
import { createLogger, RootLogger, type Logger } from '../logging.js';
import { ComputeDriver } from '../virt/driver.js';
import { createDriver } from './drivers.js';
import { conductorComputeStores } from './conductor.js';
import type { ConductorClient } from '../conductor/client.js';
import type { ComputeNotifications } from './notifications.js';

export const ConfigId = Symbol.for('novamon.Config');

/** `--config-file` values from argv (repeatable; later files win), without a full CLI parser. */
export function configFilesFromArgv(argv: readonly string[]): string[] {
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--config-file' && argv[i + 1] !== undefined) files.push(argv[++i] as string);
    else if (a.startsWith('--config-file=')) files.push(a.slice('--config-file='.length));
  }
  return files;
}

export function loadServiceConfig(files: readonly string[], env: NodeJS.ProcessEnv): Config {
  return loadConfig(files.map((f) => path.resolve(f)), env);
}

export function serviceLogger(config: Config, name: string, fd?: number): Logger {
  return createLogger({ debug: config.DEFAULT.debug, format: config.DEFAULT.log_format, name, ...(fd === undefined ? {} : { fd }) });
}

/** Every service watches its own event loop (event_loop_warning_ms); the probe's timer never keeps it alive. */
export function watchEventLoop(config: Config, logger: Logger): EventLoopProbe | null {
  const ms = config.DEFAULT.event_loop_warning_ms;
  return ms > 0 ? new EventLoopProbe(logger, ms).start() : null;
}

export function computeSettings(config: Config): ComputeSettingsShape {
  return {
    host: config.DEFAULT.host,
    instanceNameTemplate: config.DEFAULT.instance_name_template,
    shutdownTimeout: config.DEFAULT.shutdown_timeout,
    shutdownRetryInterval: 10,
    tokenTtl: config.consoleauth.token_ttl,
    vncEnabled: config.vnc.enabled,
    novncProxyBaseUrl: config.vnc.novncproxy_base_url,
    vncProxyClientAddress: config.vnc.server_proxyclient_address,
    serialEnabled: config.serial_console.enabled,
    serialBaseUrl: config.serial_console.base_url,
    serialProxyClientAddress: config.serial_console.proxyclient_address,
    syncPowerStateInterval: config.DEFAULT.sync_power_state_interval,
    defaultInstanceProject: config.DEFAULT.default_instance_project,
    defaultInstanceUser: config.DEFAULT.default_instance_user,
    monitorAllowedCommands: config.monitor.passthrough_allowed_commands,
    instancesPath: config.DEFAULT.instances_path,
    monitorMigrateUriSchemes: config.monitor.passthrough_migrate_uri_schemes,
  };
}

/**
 * Opens the database. The embedded PGlite database belongs to the process that opens it, so its
 * schema is brought up to date here; a PostgreSQL schema is managed with `novamon-manage db sync`.
 */
export async function openDatabase(config: Config, logger: Logger, opts: { requireSchema?: boolean } = {}): Promise<Database> {
  const db = await createDatabase({
    connection: config.database.connection,
    statePath: config.DEFAULT.state_path,
    poolSize: config.database.max_pool_size,
    logger,
  });
  if (db.kind === 'pglite') await syncSchema(db);
  else if (opts.requireSchema ?? true) await requireCurrentSchema(db);
  return db;
}

/** The PostgreSQL schema is missing or older than this build: the services refuse to start on it. */
export class SchemaNotCurrent extends Error {
  override readonly name = 'SchemaNotCurrent';
}

/** Say what to run, rather than fail later with "relation instances does not exist". */
async function requireCurrentSchema(db: Database): Promise<void> {
  const v = await schemaVersion(db);
  if (v.pending.length === 0) return;
  await db.close().catch(() => undefined);
  const state = v.version === 0 ? 'has no novamon schema' : `is at schema version ${v.version}, this release needs ${v.latest}`;
  throw new SchemaNotCurrent(`the database ${state}: run \`novamon-manage --config-file <the same file> db sync\` first`);
}

/**
 * Binds the compute layer (driver, stores, manager, power sync) into `container`. With
 * `instance_store = conductor` the stores go through `conductor` (a Nova cloud's database).
 */
export async function bindCompute(container: Container, config: Config, logger: Logger, db: Database, conductor?: ConductorClient, notifications?: ComputeNotifications | null): Promise<void> {
  container.bind(ConfigId).toConstantValue(config);
  container.bind(RootLogger).toConstantValue(logger);
  container.bind(ComputeLogger).toConstantValue(logger);
  container.bind(Database).toConstantValue(db);
  container.bind(ComputeSettings).toConstantValue(computeSettings(config));
  // Writes that must not be lost wait here, fsynced, while the database is away (docs/resilience.md).
  const spoolDir = path.join(config.DEFAULT.state_path, 'spool');
  let stores: ComputeStoresShape;
  if (config.DEFAULT.instance_store === 'conductor') {
    if (!conductor) throw new Error('instance_store = conductor needs a conductor client');
    stores = conductorComputeStores(config, db, logger, conductor, spoolDir);
  } else {
    stores = createComputeStores(db, logger, { spoolDir });
  }
  container.bind(ComputeStores).toConstantValue(stores);
  // Notifications carry the instance as the store holds it when they are sent.
  container.bind(ComputeNotifier).toConstantValue(notifications ? notifications.notifier((uuid) => stores.instances.details(uuid)) : noNotifications);
  container.bind(ComputeDriver).toConstantValue(await createDriver(config, logger));
  container.bind(ComputeManager).toSelf().inSingletonScope();
  container.bind(InstanceResolver).toSelf().inSingletonScope();
  container.bind(InstanceRecorder).toSelf().inSingletonScope();
  container.bind(MonitorPolicy).toSelf().inSingletonScope();
  container.bind(PowerStateSync).toSelf().inSingletonScope();
  container.bind(ComputeForensics).toSelf().inSingletonScope();
  container.bind(GuestRunEventLog).toSelf().inSingletonScope();
}
