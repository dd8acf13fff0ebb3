// novamon-compute: the compute RPC service. Reads the configuration, opens the database, starts the
// driver and the power-state sync, then serves compute.<host> over RabbitMQ until SIGTERM/SIGINT.

import 'reflect-metadata';
import { Container } from 'inversify';
import { Command } from 'commander';
import { ConfigError } from '../config/loader.js';
import { ComputeManager } from '../compute/manager.js';
import { PowerStateSync } from '../compute/lifecycle.js';
import { ComputeStores } from '../compute/tokens.js';
import type { ComputeStoresWithClose } from '../db/compute-stores.js';
import { ComputeDriver, type ComputeDriver as ComputeDriverType } from '../virt/driver.js';
import { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { RpcDispatcher } from '../rpc/dispatcher.js';
import { RpcServer } from '../rpc/server.js';
import { computeEndpoints } from '../rpc/endpoints/compute.js';
import { bindCompute, loadServiceConfig, openDatabase, serviceLogger } from './bootstrap.js';
import { startOpsListener } from './ops-listener.js';
import { Metrics } from '../metrics.js';

async function main(argv: string[]): Promise<void> {
  const program = new Command('novamon-compute')
    .description('Serve Nova\'s compute RPC API from the QEMU monitor')
    .option('--config-file <path>', 'configuration file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .parse(argv);
  const opts = program.opts<{ configFile: string[] }>();
  const config = loadServiceConfig(opts.configFile, process.env);
  const logger = serviceLogger(config, 'novamon-compute');
  const log = logger.child({ component: 'main' });

  const db = await openDatabase(config, logger);
  const container = new Container();
  await bindCompute(container, config, logger, db);
  const manager = container.get(ComputeManager);
  const sync = container.get(PowerStateSync);
  const driver = container.get<ComputeDriverType>(ComputeDriver);

  const metrics = new Metrics('novamon-compute');
  const rabbit = config.oslo_messaging_rabbit;
  const connection = new AmqpConnectionManager({
    transportUrl: config.DEFAULT.transport_url,
    logger,
    heartbeatSeconds: rabbit.heartbeat_timeout_threshold,
    retryIntervalMs: rabbit.rabbit_retry_interval * 1000,
    retryBackoffMs: rabbit.rabbit_retry_backoff * 1000,
    intervalMaxMs: rabbit.rabbit_interval_max * 1000,
    connectionName: `novamon-compute:${config.DEFAULT.host}`,
  });
  const server = new RpcServer({
    connection,
    exchange: config.DEFAULT.control_exchange,
    topic: 'compute',
    server: config.DEFAULT.host,
    dispatcher: new RpcDispatcher(computeEndpoints(manager)),
    prefetch: rabbit.rabbit_qos_prefetch_count || config.DEFAULT.executor_thread_pool_size,
    durableQueues: rabbit.amqp_durable_queues || rabbit.rabbit_quorum_queue,
    quorumQueues: rabbit.rabbit_quorum_queue,
    autoDelete: rabbit.amqp_auto_delete,
    transientQueueTtlMs: rabbit.rabbit_transient_queues_ttl * 1000,
    logger,
    onMetrics: (m) => {
      const method = m.method ?? 'unknown';
      metrics.rpcCalls.inc({ method, kind: m.kind, outcome: m.outcome });
      metrics.rpcLatency.observe({ method, kind: m.kind }, m.durationMs / 1000);
    },
  });

  let stopping = false;
  const ops = config.oslo_middleware.enabled ? await startOpsListener(config, logger, {
        db,
        connection,
        metrics,
        refresh: () => {
          metrics.lifecycleEvents.set(sync.eventsHandled);
          const stats = driverStats(driver);
          if (stats) {
            metrics.qmpConnections.set(stats.connections);
            metrics.qmpCommands.set(stats.commands);
            metrics.qmpErrors.set(stats.errors);
          }
        },
      }) : null;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new messages, finishing in-flight work');
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 10_000);
    deadline.unref();
    try {
      await server.stop();
      await sync.close();
      await container.get<ComputeStoresWithClose>(ComputeStores).close();
      await driver.close();
      await connection.close();
      await ops?.close();
      await db.close();
      log.info('stopped');
      logger.flush();
      process.exitCode = 0;
    } catch (err) {
      log.error({ err }, 'error while stopping');
      process.exitCode = 1;
    }
    clearTimeout(deadline);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  await sync.start();
  await connection.connect();
  await server.start();
  log.info({ host: config.DEFAULT.host, driver: driver.type, exchange: config.DEFAULT.control_exchange, queues: server.queues, database: db.kind }, 'novamon-compute ready');
}

/** Monitor connection counters, for drivers that keep monitor connections (qemu). */
function driverStats(driver: object): { connections: number; commands: number; errors: number } | null {
  const stats = (driver as { monitorStats?: () => { connections: number; commands: number; errors: number } }).monitorStats;
  return typeof stats === 'function' ? stats.call(driver) : null;
}

main(process.argv).catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`novamon-compute: ${message}\n`);
  process.exit(1);
});
