// The console proxies: novamon-novncproxy (noVNC's pages and VNC) and novamon-serialproxy (serial ports,
// WebSocket only). Each is put together from the configuration and the two things it shares with the rest
// of novamon: the database holding console_auth_tokens and instances, and an RPC client to the compute hosts.

import type { Config } from '../config/options.js';
import { ConfigError } from '../config/loader.js';
import { KnexConsoleAuthTokenRepository } from '../db/console-auth-token-repository.js';
import { KnexInstanceRepository } from '../db/instance-repository.js';
import type { Database } from '../db/knex.js';
import type { Logger } from '../logging.js';
import type { RpcClient } from '../rpc/client.js';
import { ConsoleAuthorizer, type ConsolePortValidator } from '../consoleproxy/authorizer.js';
import { allowedOriginHostnames } from '../consoleproxy/origin.js';
import { RpcConsolePortValidator } from '../consoleproxy/rpc-port-validator.js';
import { ConsoleProxy, type ConsoleProxyOptions } from '../consoleproxy/server.js';
import { loadServiceConfig, openDatabase, serviceLogger, watchEventLoop } from './bootstrap.js';
import { amqpConnection, onHangup, onShutdown, rpcClient, serviceConfigFiles } from './service.js';

/** The console type a proxy serves, as console_auth_tokens.console_type spells it. */
export type ConsoleProxyKind = 'novnc' | 'serial';

const SERVICES: Record<ConsoleProxyKind, { service: string; description: string }> = {
  novnc: {
    service: 'novamon-novncproxy',
    description: 'Serve noVNC and bridge its WebSockets to guests\' VNC servers, for the console URLs novamon hands out',
  },
  serial: {
    service: 'novamon-serialproxy',
    description: 'Bridge WebSockets to guests\' TCP serial ports, for the serial console URLs novamon hands out',
  },
};

interface KindSettings {
  baseUrl: string;
  host: string;
  port: number;
  proxy: Pick<ConsoleProxyOptions, 'name' | 'serverGreets' | 'exclusive' | 'staticFiles' | 'bridge'>;
}

function kindSettings(config: Config, kind: ConsoleProxyKind): KindSettings {
  if (kind === 'novnc') {
    const vnc = config.vnc;
    return {
      baseUrl: vnc.novncproxy_base_url,
      host: vnc.novncproxy_host,
      port: vnc.novncproxy_port,
      proxy: { name: 'novncproxy' },
    };
  }
  const serial = config.serial_console;
  return {
    baseUrl: serial.base_url,
    host: serial.serialproxy_host,
    port: serial.serialproxy_port,
    // A serial port is silent until the guest writes, serves one client at a time, and a terminal sends
    // what is typed in text frames. When the session ends, QEMU may never read the FIN: keys the guest
    // did not read fill its UART, and QEMU stops reading the socket. Its writes to a half-closed socket
    // succeed, so it keeps the client, and the next session would be silent. Hence a short grace: the
    // connection is cut (RST), QEMU's next write fails, and it accepts the next client.
    proxy: { name: 'serialproxy', serverGreets: false, exclusive: true, staticFiles: null, bridge: { forwardText: true, closeGraceMs: 250 } },
  };
}

export interface ConsoleProxyDeps {
  config: Config;
  db: Database;
  rpc: Pick<RpcClient, 'call'>;
  logger: Logger;
  /** Which console the proxy serves. Default novnc. */
  kind?: ConsoleProxyKind;
  /** Replaces the RPC validate_console_port check (tests of the proxy alone). */
  portValidator?: ConsolePortValidator;
  proxy?: Partial<Omit<ConsoleProxyOptions, 'authorizer' | 'logger'>>;
}

export function createConsoleProxy(deps: ConsoleProxyDeps): ConsoleProxy {
  const kind = deps.kind ?? 'novnc';
  const settings = kindSettings(deps.config, kind);
  const authorizer = new ConsoleAuthorizer(
    new KnexConsoleAuthTokenRepository(deps.db),
    new KnexInstanceRepository(deps.db),
    deps.portValidator ?? new RpcConsolePortValidator(deps.rpc, deps.config.DEFAULT.rpc_response_timeout * 1000),
    {
      consoleType: kind,
      allowedOriginHostnames: allowedOriginHostnames(settings.baseUrl, [settings.host]),
      baseUrl: settings.baseUrl,
      lookupTimeoutMs: 10_000,
    },
  );
  return new ConsoleProxy({ ...settings.proxy, ...deps.proxy, authorizer, logger: deps.logger });
}

/**
 * A console proxy service's main: reads the configuration, opens the PostgreSQL database it shares with
 * novamon-compute (console tokens), connects to RabbitMQ for validate_console_port, then listens until
 * SIGTERM/SIGINT closes every open console.
 */
export async function consoleProxyMain(kind: ConsoleProxyKind, argv: string[]): Promise<void> {
  const { service, description } = SERVICES[kind];
  const configFiles = serviceConfigFiles(service, description, argv);
  const config = loadServiceConfig(configFiles, process.env);
  const settings = kindSettings(config, kind);
  const logger = serviceLogger(config, service);
  onHangup(logger, configFiles, config);
  watchEventLoop(config, logger);
  const log = logger.child({ component: 'main' });

  if (config.database.connection === '') {
    // The embedded database lives inside novamon-compute's process; the proxy has to read the tokens
    // compute writes, so both must use the same PostgreSQL database.
    throw new ConfigError(`${service} needs [database] connection = postgresql://... (the database novamon-compute writes console tokens to); the embedded database cannot be shared between processes`);
  }
  const db = await openDatabase(config, logger);
  const connection = amqpConnection(config, logger, service);
  const rpc = rpcClient(config, connection, logger);
  const proxy = createConsoleProxy({ config, db, rpc, logger, kind });

  onShutdown(logger, 15_000, () => ({ open: proxy.stats().open }), [
    () => proxy.close(),
    () => rpc.close(),
    () => connection.close(),
    () => db.close(),
  ]);

  const addr = await proxy.listen(settings.host, settings.port);
  log.info({ ...addr, baseUrl: settings.baseUrl, exchange: config.DEFAULT.control_exchange, database: db.kind }, `${service} ready`);
}
