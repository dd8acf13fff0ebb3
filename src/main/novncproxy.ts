// novamon-novncproxy: the noVNC console proxy. Reads the configuration, opens the PostgreSQL database it
// shares with novamon-compute (console tokens), connects to RabbitMQ for validate_console_port, then serves
// [vnc] novncproxy_host:novncproxy_port until SIGTERM/SIGINT closes every console bridge.

import 'reflect-metadata';
import { Command } from 'commander';
import { ConfigError } from '../config/loader.js';
import { createConsoleProxy } from '../consoleproxy/service.js';
import { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { RpcClient } from '../rpc/client.js';
import { loadServiceConfig, openDatabase, serviceLogger } from './bootstrap.js';

async function main(argv: string[]): Promise<void> {
  const program = new Command('novamon-novncproxy')
    .description('Serve noVNC and bridge its WebSockets to guests\' VNC servers, for the console URLs novamon hands out')
    .option('--config-file <path>', 'configuration file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .parse(argv);
  const opts = program.opts<{ configFile: string[] }>();
  const config = loadServiceConfig(opts.configFile, process.env);
  const logger = serviceLogger(config, 'novamon-novncproxy');
  const log = logger.child({ component: 'main' });

  if (config.database.connection === '') {
    // The embedded database lives inside novamon-compute's process; the proxy has to read the tokens
    // compute writes, so both must use the same PostgreSQL database.
    throw new ConfigError('novamon-novncproxy needs [database] connection = postgresql://... (the database novamon-compute writes console tokens to); the embedded database cannot be shared between processes');
  }
  const db = await openDatabase(config, logger);
  const rabbit = config.oslo_messaging_rabbit;
  const connection = new AmqpConnectionManager({
    transportUrl: config.DEFAULT.transport_url,
    logger,
    heartbeatSeconds: rabbit.heartbeat_timeout_threshold,
    retryIntervalMs: rabbit.rabbit_retry_interval * 1000,
    retryBackoffMs: rabbit.rabbit_retry_backoff * 1000,
    intervalMaxMs: rabbit.rabbit_interval_max * 1000,
    connectionName: `novamon-novncproxy:${config.DEFAULT.host}`,
  });
  const rpc = new RpcClient({
    connection,
    exchange: config.DEFAULT.control_exchange,
    timeoutMs: config.DEFAULT.rpc_response_timeout * 1000,
    logger,
    transientQueueTtlMs: rabbit.rabbit_transient_queues_ttl * 1000,
    durableQueues: rabbit.amqp_durable_queues || rabbit.rabbit_quorum_queue,
    quorumQueues: rabbit.rabbit_quorum_queue,
    autoDelete: rabbit.amqp_auto_delete,
  });
  const proxy = createConsoleProxy({ config, db, rpc, logger });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, open: proxy.stats().open }, 'stopping: closing every console');
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 15_000);
    deadline.unref();
    try {
      await proxy.close();
      await rpc.close();
      await connection.close();
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

  const addr = await proxy.listen(config.vnc.novncproxy_host, config.vnc.novncproxy_port);
  log.info({ ...addr, baseUrl: config.vnc.novncproxy_base_url, exchange: config.DEFAULT.control_exchange, database: db.kind }, 'novamon-novncproxy ready');
}

main(process.argv).catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`novamon-novncproxy: ${message}\n`);
  process.exit(1);
});
