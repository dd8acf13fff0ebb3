// novamon-compute: the compute RPC service. Reads the configuration, opens the database, starts the
// driver and the power-state sync, then serves compute.<host> over RabbitMQ until SIGTERM/SIGINT.

import 'reflect-metadata';
import { Container } from 'inversify';
import { ComputeManager } from '../compute/manager.js';
import { PowerStateSync } from '../compute/lifecycle.js';
import { MonitorPolicy } from '../compute/monitor-policy.js';
import { ComputeStores } from '../compute/tokens.js';
import type { ComputeStoresWithClose } from './compute-stores.js';
import { ComputeDriver, type ComputeDriver as ComputeDriverType } from '../virt/driver.js';
import { RpcDispatcher } from '../rpc/dispatcher.js';
import { RpcServer } from '../rpc/server.js';
import { computeEndpoints } from '../rpc/endpoints/compute.js';
import { NovamonEndpoint } from '../rpc/endpoints/novamon.js';
import { ComputeForensics } from '../compute/forensics.js';
import { GuestRunEventLog } from '../compute/run-events.js';
import { Housekeeping } from '../compute/housekeeping.js';
import { bindCompute, loadServiceConfig, openDatabase, serviceLogger, watchEventLoop } from './bootstrap.js';
import { amqpConnection, onHangup, onShutdown, queueFlags, runService, serviceConfigFiles } from './service.js';
import { Metrics } from '../metrics.js';
import type { Config } from '../config/options.js';
import type { Database } from '../db/knex.js';
import type { Logger } from '../logging.js';
import type { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { registerGuestMetrics } from './guest-metrics.js';
import { cloudMember } from './conductor.js';
import { computeNotifications } from './notifications.js';
import { databaseRecords } from './manage-records.js';

async function main(argv: string[]): Promise<void> {
  const configFiles = serviceConfigFiles('novamon-compute', 'Serve Nova\'s compute RPC API from the QEMU monitor', argv);
  const config = loadServiceConfig(configFiles, process.env);
  const logger = serviceLogger(config, 'novamon-compute');
  onHangup(logger, configFiles, config);
  watchEventLoop(config, logger);
  const log = logger.child({ component: 'main' });

  const db = await openDatabase(config, logger);
  const connection = amqpConnection(config, logger, 'novamon-compute');
  // A member of a Nova cloud keeps its instances in Nova's database, through nova-conductor.
  const member = config.DEFAULT.instance_store === 'conductor' ? cloudMember(config, connection, logger) : null;
  const notifications = computeNotifications(config, connection, logger);
  const container = new Container();
  await bindCompute(container, config, logger, db, member?.conductor, notifications);
  const manager = container.get(ComputeManager);
  const sync = container.get(PowerStateSync);
  const driver = container.get<ComputeDriverType>(ComputeDriver);
  const forensics = container.get(ComputeForensics);
  const overridden = container.get(MonitorPolicy).overridden;
  if (overridden.length > 0) log.warn({ overridden }, '[monitor] passthrough_allowed_commands lists commands the built-in deny list refuses; they stay refused');
  const runEvents = container.get(GuestRunEventLog);
  // Listening before the driver connects, so the first connections' shutdowns and panics are kept too.
  runEvents.start();

  const metrics = new Metrics('novamon-compute');
  // novamon-manage asks the service for what it cannot read while the service holds the embedded database.
  const records = config.DEFAULT.instance_store === 'database' ? databaseRecords(db) : undefined;
  const dispatcher = new RpcDispatcher([...computeEndpoints(manager, forensics), new NovamonEndpoint(manager, forensics, records)]);
  const server = computeRpcServer(config, connection, logger, dispatcher, metrics);
  const stores = container.get<ComputeStoresWithClose>(ComputeStores);
  const ops = await startOps(config, logger, { db, connection, metrics, driver, sync, stores });
  const housekeeping = new Housekeeping(stores, {
    host: config.DEFAULT.host,
    intervalMs: config.DEFAULT.instance_delete_interval * 1000,
    diagnosticsRetentionMs: config.database.diagnostics_retention_hours * 3_600_000,
  }, logger);
  onShutdown(logger, 10_000, () => ({ inFlight: server.inFlight }), [
    () => server.stop(),
    () => housekeeping.close(),
    // Nova keeps the service row: nova-api shows the host down once service_down_time has passed.
    () => member?.membership.close(),
    () => notifications?.close(),
    () => sync.close(),
    () => runEvents.close(),
    () => stores.close(),
    () => driver.close(),
    () => member?.rpc.close(),
    () => connection.close(),
    () => ops?.close(),
    () => db.close(),
  ]);

  if (member) {
    // Nova's order: a conductor answers, the service row exists, the host's instances are synced, RPC is served, heartbeats run.
    await connection.connect();
    await member.membership.join();
    await sync.start();
  } else {
    await sync.start();
    await connection.connect();
  }
  await server.start();
  housekeeping.start();
  log.info(
    { host: config.DEFAULT.host, driver: driver.type, exchange: config.DEFAULT.control_exchange, queues: server.queues, database: db.kind, instance_store: config.DEFAULT.instance_store },
    'novamon-compute ready',
  );
}

/** The compute topic's RPC server for this host, counting every call in the service's metrics. */
function computeRpcServer(config: Config, connection: AmqpConnectionManager, logger: Logger, dispatcher: RpcDispatcher, metrics: Metrics): RpcServer {
  const rabbit = config.oslo_messaging_rabbit;
  return new RpcServer({
    connection,
    exchange: config.DEFAULT.control_exchange,
    topic: 'compute',
    server: config.DEFAULT.host,
    dispatcher,
    prefetch: rabbit.rabbit_qos_prefetch_count || config.DEFAULT.executor_thread_pool_size,
    ...queueFlags(config),
    logger,
    onMetrics: (m) => {
      const method = m.method ?? 'unknown';
      metrics.rpcCalls.inc({ method, kind: m.kind, outcome: m.outcome });
      metrics.rpcLatency.observe({ method, kind: m.kind }, m.durationMs / 1000);
    },
  });
}

/**
 * The operations listener (/healthcheck, /metrics) with the per-guest metrics, when [oslo_middleware] enables
 * it; null otherwise. The HTTP framework is loaded only then.
 */
async function startOps(
  config: Config,
  logger: Logger,
  o: { db: Database; connection: AmqpConnectionManager; metrics: Metrics; driver: ComputeDriverType; sync: PowerStateSync; stores: ComputeStoresWithClose },
): Promise<{ close(): Promise<void> } | null> {
  if (!config.oslo_middleware.enabled) return null;
  const { metrics, driver, sync } = o;
  const refresh = () => {
    metrics.lifecycleEvents.set(sync.eventsHandled);
    const stats = driver.monitorStats?.() ?? null;
    if (stats) {
      metrics.qmpConnections.set(stats.connections);
      metrics.qmpCommands.set(stats.commands);
      metrics.qmpErrors.set(stats.errors);
    }
  };
  // Bounded: a frozen guest's monitor holds at most its own collection, never the scrape.
  const projectsOf = async () => new Map((await o.stores.instances.listByHost(config.DEFAULT.host)).flatMap((r) => (r.projectId ? [[r.name, r.projectId] as const] : [])));
  registerGuestMetrics(metrics.registry, driver, { concurrency: 4, timeoutMs: 5000, projectsOf });
  return (await import('./ops-listener.js')).startOpsListener(config, logger, { db: o.db, connection: o.connection, metrics, refresh });
}

runService('novamon-compute', () => main(process.argv));
