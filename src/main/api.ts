// novamon-api: Nova's compute REST API v2.1 (the subset in docs/api.md) over novamon's database and
// the compute RPC wire. Reads --config-file (repeatable), listens on osapi_compute_listen:port, and
// stops cleanly on SIGTERM/SIGINT (no new requests, in-flight ones answered, then RabbitMQ and the db).

import 'reflect-metadata';
import { Command } from 'commander';
import { Counter } from 'prom-client';
import { buildApiApp } from '../api/app.js';
import { KeystoneAuthenticator, NoAuth2Authenticator, type Authenticator } from '../api/auth.js';
import { ComputeApi } from '../api/compute-api.js';
import { ConfigError } from '../config/loader.js';
import type { Config } from '../config/options.js';
import { KnexInstanceActionRepository } from '../db/instance-action-repository.js';
import { KnexInstanceFaultRepository } from '../db/instance-fault-repository.js';
import { KnexInstanceRepository } from '../db/instance-repository.js';
import type { Logger } from '../logging.js';
import { Metrics } from '../metrics.js';
import { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { RpcClient } from '../rpc/client.js';
import { loadServiceConfig, openDatabase, serviceLogger } from './bootstrap.js';
import { healthProblems } from './ops-listener.js';

function authenticator(config: Config, logger: Logger, metrics: Metrics): Authenticator {
  if (config.api.auth_strategy === 'noauth2') {
    logger.warn({ component: 'api' }, 'auth_strategy = noauth2: any caller can act as any user (development only)');
    return new NoAuth2Authenticator();
  }
  const k = config.keystone_authtoken;
  if (k.auth_url === '') throw new ConfigError('[keystone_authtoken] auth_url must be set when [api] auth_strategy = keystone');
  const counter = new Counter({
    name: 'novamon_api_token_validations_total',
    help: 'Keystone token checks by result (hit = answered from the cache)',
    labelNames: ['result'],
    registers: [metrics.registry],
  });
  return new KeystoneAuthenticator(
    {
      authUrl: k.auth_url,
      wwwAuthenticateUri: k.www_authenticate_uri,
      username: k.username,
      password: k.password,
      projectName: k.project_name,
      userDomainName: k.user_domain_name,
      projectDomainName: k.project_domain_name,
      tokenCacheTime: k.token_cache_time,
    },
    logger.child({ component: 'keystone' }),
    counter,
  );
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('novamon-api')
    .description('Serve Nova\'s compute REST API v2.1 for novamon (and nova-compute) hosts')
    .option('--config-file <path>', 'configuration file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .parse(argv);
  const opts = program.opts<{ configFile: string[] }>();
  const config = loadServiceConfig(opts.configFile, process.env);
  const logger = serviceLogger(config, 'novamon-api');
  const log = logger.child({ component: 'main' });
  if (config.database.connection === '') {
    log.warn('[database] connection is empty: the embedded database is this process\'s own, so novamon-api sees no compute host\'s instances; use PostgreSQL');
  }

  const metrics = new Metrics('novamon-api');
  const auth = authenticator(config, logger, metrics);
  const db = await openDatabase(config, logger);
  const rabbit = config.oslo_messaging_rabbit;
  const connection = new AmqpConnectionManager({
    transportUrl: config.DEFAULT.transport_url,
    logger,
    heartbeatSeconds: rabbit.heartbeat_timeout_threshold,
    retryIntervalMs: rabbit.rabbit_retry_interval * 1000,
    retryBackoffMs: rabbit.rabbit_retry_backoff * 1000,
    intervalMaxMs: rabbit.rabbit_interval_max * 1000,
    connectionName: `novamon-api:${config.DEFAULT.host}`,
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
  const compute = new ComputeApi(
    { instances: new KnexInstanceRepository(db), actions: new KnexInstanceActionRepository(db), faults: new KnexInstanceFaultRepository(db) },
    rpc,
    { rpcTimeoutSeconds: config.DEFAULT.rpc_response_timeout },
    logger.child({ component: 'compute-api' }),
  );
  const app = await buildApiApp({
    compute,
    authenticator: auth,
    logger,
    metrics,
    health: () => healthProblems({ db, connection }),
    maxBodyBytes: config.api.max_request_body_size,
    monitorPassthrough: config.api.enable_monitor_passthrough,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: no new requests, answering in-flight ones');
    const deadline = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, 10_000);
    deadline.unref();
    try {
      await app.close();
      await rpc.close();
      await connection.close();
      await auth.close();
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

  // RabbitMQ may come up later: the first call waits for it (bounded), the API answers meanwhile.
  connection.connect().catch((err: unknown) => log.warn({ err: String(err) }, 'RabbitMQ not reachable yet; retrying in the background'));
  const address = await app.listen({ host: config.DEFAULT.osapi_compute_listen, port: config.DEFAULT.osapi_compute_listen_port });
  log.info({ address, auth: config.api.auth_strategy, exchange: config.DEFAULT.control_exchange, database: db.kind }, 'novamon-api ready');
}

main(process.argv).catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`novamon-api: ${message}\n`);
  process.exit(1);
});
