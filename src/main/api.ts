// novamon-api: Nova's compute REST API v2.1 (the subset in docs/api.md) over novamon's database and
// the compute RPC wire. Reads --config-file (repeatable), listens on osapi_compute_listen:port, and
// stops cleanly on SIGTERM/SIGINT (no new requests, in-flight ones answered, then RabbitMQ and the db).

import 'reflect-metadata';
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
import { loadServiceConfig, openDatabase, serviceLogger, watchEventLoop } from './bootstrap.js';
import { healthProblems } from './ops-listener.js';
import { amqpConnection, onHangup, onShutdown, rpcClient, runService, serviceConfigFiles } from './service.js';

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
  const configFiles = serviceConfigFiles('novamon-api', 'Serve Nova\'s compute REST API v2.1 for novamon (and nova-compute) hosts', argv);
  const config = loadServiceConfig(configFiles, process.env);
  const logger = serviceLogger(config, 'novamon-api');
  onHangup(logger, configFiles, config);
  watchEventLoop(config, logger);
  const log = logger.child({ component: 'main' });
  if (config.database.connection === '') {
    log.warn('[database] connection is empty: the embedded database is this process\'s own, so novamon-api sees no compute host\'s instances; use PostgreSQL');
  }

  const metrics = new Metrics('novamon-api');
  const auth = authenticator(config, logger, metrics);
  const db = await openDatabase(config, logger);
  const connection = amqpConnection(config, logger, 'novamon-api');
  const rpc = rpcClient(config, connection, logger);
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

  onShutdown(logger, 10_000, () => ({}), [
    () => app.close(),
    () => rpc.close(),
    () => connection.close(),
    () => auth.close(),
    () => db.close(),
  ]);

  // RabbitMQ may come up later: the first call waits for it (bounded), the API answers meanwhile.
  connection.connect().catch((err: unknown) => log.warn({ err: String(err) }, 'RabbitMQ not reachable yet; retrying in the background'));
  const address = await app.listen({ host: config.DEFAULT.osapi_compute_listen, port: config.DEFAULT.osapi_compute_listen_port });
  log.info({ address, auth: config.api.auth_strategy, exchange: config.DEFAULT.control_exchange, database: db.kind }, 'novamon-api ready');
}

runService('novamon-api', () => main(process.argv));
