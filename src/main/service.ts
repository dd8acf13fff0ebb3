// What every long-running novamon binary does the same way: its command line, its RabbitMQ
// connection and RPC client from [oslo_messaging_rabbit], a graceful stop on SIGTERM/SIGINT that
// closes resources in order within a deadline, a configuration reload on SIGHUP, and a one-line error
// on a failed start.

import path from 'node:path';
import { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/loader.js';
import type { Config } from '../config/options.js';
import type { Logger } from '../logging.js';
import { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { RpcClient } from '../rpc/client.js';
import type { QueueTuning } from '../rpc/topology.js';

/** `--config-file` (repeatable; later files win), parsed from argv. */
export function serviceConfigFiles(name: string, description: string, argv: string[]): string[] {
  const program = new Command(name)
    .description(description)
    .option('--config-file <path>', 'configuration file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .parse(argv);
  return program.opts<{ configFile: string[] }>().configFile;
}

export function amqpConnection(config: Config, logger: Logger, service: string): AmqpConnectionManager {
  const rabbit = config.oslo_messaging_rabbit;
  return new AmqpConnectionManager({
    transportUrl: config.DEFAULT.transport_url,
    failoverStrategy: rabbit.kombu_failover_strategy,
    logger,
    heartbeatSeconds: rabbit.heartbeat_timeout_threshold,
    retryIntervalMs: rabbit.rabbit_retry_interval * 1000,
    retryBackoffMs: rabbit.rabbit_retry_backoff * 1000,
    intervalMaxMs: rabbit.rabbit_interval_max * 1000,
    connectionName: `${service}:${config.DEFAULT.host}`,
  });
}

/** The queue flags every novamon peer declares, as oslo derives them from its options. */
export function queueFlags(config: Config): { durableQueues: boolean; quorumQueues: boolean; autoDelete: boolean; transientQueueTtlMs: number; queueTuning: QueueTuning } {
  const rabbit = config.oslo_messaging_rabbit;
  if (rabbit.rabbit_quorum_queue && rabbit.rabbit_ha_queues) {
    throw new ConfigError('[oslo_messaging_rabbit] rabbit_quorum_queue and rabbit_ha_queues are both enabled: a queue is quorum or HA (mirrored), not both');
  }
  return {
    queueTuning: {
      haQueues: rabbit.rabbit_ha_queues,
      quorumDeliveryLimit: rabbit.rabbit_quorum_delivery_limit,
      quorumMaxMemoryLength: rabbit.rabbit_quroum_max_memory_length,
      quorumMaxMemoryBytes: rabbit.rabbit_quroum_max_memory_bytes,
    },
    durableQueues: rabbit.amqp_durable_queues || rabbit.rabbit_quorum_queue,
    quorumQueues: rabbit.rabbit_quorum_queue,
    autoDelete: rabbit.amqp_auto_delete,
    transientQueueTtlMs: rabbit.rabbit_transient_queues_ttl * 1000,
  };
}

export function rpcClient(config: Config, connection: AmqpConnectionManager, logger: Logger, timeoutSeconds = config.DEFAULT.rpc_response_timeout): RpcClient {
  return new RpcClient({ connection, exchange: config.DEFAULT.control_exchange, timeoutMs: timeoutSeconds * 1000, logger, ...queueFlags(config) });
}

/**
 * On SIGTERM or SIGINT: log, run `steps` in order (each closes one resource), flush the logger and
 * exit 0; exit 1 when a step fails or the whole stop outlasts `deadlineMs`.
 */
export function onShutdown(logger: Logger, deadlineMs: number, announce: () => Record<string, unknown>, steps: Array<() => Promise<unknown> | undefined>): void {
  const log = logger.child({ component: 'main' });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) {
      // Ctrl-C under npm or a shell wrapper arrives twice (the terminal's and the relayed one): finish the
      // stop under way, bounded by the deadline, rather than die half-way through it with writes unflushed.
      log.info({ signal }, 'already stopping');
      return;
    }
    stopping = true;
    log.info({ signal, ...announce() }, 'stopping');
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, deadlineMs);
    deadline.unref();
    try {
      for (const step of steps) await step();
      log.info('stopped');
      process.exitCode = 0;
    } catch (err) {
      log.error({ err }, 'error while stopping');
      process.exitCode = 1;
    }
    logger.flush();
    clearTimeout(deadline);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** Options a reload applies while the service runs (oslo.log's `debug` is mutable in Nova's services too). */
const MUTABLE_OPTIONS = new Set(['DEFAULT.debug']);

/**
 * On SIGHUP, as oslo.service does for Nova's services: read the configuration files again and apply what
 * may change while running, the log level (`[DEFAULT] debug`, unless NOVAMON_LOG_LEVEL pins it); other
 * options that changed are named in the log as waiting for a restart, and files that no longer load leave
 * everything as it was. Without a handler a hang-up (`systemctl reload`, a closed terminal) ended the
 * service on the spot, with no graceful stop.
 */
export function onHangup(logger: Logger, configFiles: readonly string[], running: Config): void {
  const log = logger.child({ component: 'main' });
  process.on('SIGHUP', () => {
    let next: Config;
    try {
      next = loadConfig(configFiles.map((f) => path.resolve(f)), process.env);
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'SIGHUP: configuration not reloaded; the running one stays');
      return;
    }
    logger.level = process.env['NOVAMON_LOG_LEVEL'] ?? (next.DEFAULT.debug ? 'debug' : 'info');
    const needRestart = changedOptions(running, next).filter((o) => !MUTABLE_OPTIONS.has(o));
    log.info({ logLevel: logger.level, ...(needRestart.length > 0 ? { needRestart } : {}) }, 'SIGHUP: configuration reloaded');
  });
}

/** `section.option` of every option whose value differs between two configurations. */
function changedOptions(a: Config, b: Config): string[] {
  const out: string[] = [];
  const sections = a as unknown as Record<string, Record<string, unknown>>;
  const others = b as unknown as Record<string, Record<string, unknown>>;
  for (const [section, options] of Object.entries(sections)) {
    for (const [option, value] of Object.entries(options)) {
      if (JSON.stringify(value) !== JSON.stringify(others[section]?.[option])) out.push(`${section}.${option}`);
    }
  }
  return out;
}

/** Runs a binary's main; a failed start prints one readable line and exits 1. */
export function runService(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    const message = err instanceof ConfigError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  });
}
