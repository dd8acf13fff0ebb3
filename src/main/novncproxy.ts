// novamon-novncproxy: the noVNC console proxy. Reads the configuration, opens the PostgreSQL database it
// shares with novamon-compute (console tokens), connects to RabbitMQ for validate_console_port, then serves
// [vnc] novncproxy_host:novncproxy_port until SIGTERM/SIGINT closes every console bridge.

import 'reflect-metadata';
import { ConfigError } from '../config/loader.js';
import { createConsoleProxy } from './consoleproxy.js';
import { loadServiceConfig, openDatabase, serviceLogger, watchEventLoop } from './bootstrap.js';
import { amqpConnection, onHangup, onShutdown, rpcClient, runService, serviceConfigFiles } from './service.js';

async function main(argv: string[]): Promise<void> {
  const configFiles = serviceConfigFiles('novamon-novncproxy', 'Serve noVNC and bridge its WebSockets to guests\' VNC servers, for the console URLs novamon hands out', argv);
  const config = loadServiceConfig(configFiles, process.env);
  const logger = serviceLogger(config, 'novamon-novncproxy');
  onHangup(logger, configFiles, config);
  watchEventLoop(config, logger);
  const log = logger.child({ component: 'main' });

  if (config.database.connection === '') {
    // The embedded database lives inside novamon-compute's process; the proxy has to read the tokens
    // compute writes, so both must use the same PostgreSQL database.
    throw new ConfigError('novamon-novncproxy needs [database] connection = postgresql://... (the database novamon-compute writes console tokens to); the embedded database cannot be shared between processes');
  }
  const db = await openDatabase(config, logger);
  const connection = amqpConnection(config, logger, 'novamon-novncproxy');
  const rpc = rpcClient(config, connection, logger);
  const proxy = createConsoleProxy({ config, db, rpc, logger });

  onShutdown(logger, 15_000, () => ({ open: proxy.stats().open }), [
    () => proxy.close(),
    () => rpc.close(),
    () => connection.close(),
    () => db.close(),
  ]);

  const addr = await proxy.listen(config.vnc.novncproxy_host, config.vnc.novncproxy_port);
  log.info({ ...addr, baseUrl: config.vnc.novncproxy_base_url, exchange: config.DEFAULT.control_exchange, database: db.kind }, 'novamon-novncproxy ready');
}

runService('novamon-novncproxy', () => main(process.argv));
