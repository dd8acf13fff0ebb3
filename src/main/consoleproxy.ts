// Puts a console proxy together from the configuration and the two things it shares with the rest of
// novamon: the database holding console_auth_tokens and instances, and an RPC client to the compute hosts.

import type { Config } from '../config/options.js';
import { KnexConsoleAuthTokenRepository } from '../db/console-auth-token-repository.js';
import { KnexInstanceRepository } from '../db/instance-repository.js';
import type { Database } from '../db/knex.js';
import type { Logger } from '../logging.js';
import type { RpcClient } from '../rpc/client.js';
import { ConsoleAuthorizer, type ConsolePortValidator } from '../consoleproxy/authorizer.js';
import { allowedOriginHostnames } from '../consoleproxy/origin.js';
import { RpcConsolePortValidator } from '../consoleproxy/rpc-port-validator.js';
import { NovncProxy, type NovncProxyOptions } from '../consoleproxy/server.js';

export interface ConsoleProxyDeps {
  config: Config;
  db: Database;
  rpc: Pick<RpcClient, 'call'>;
  logger: Logger;
  /** Replaces the RPC validate_console_port check (tests of the proxy alone). */
  portValidator?: ConsolePortValidator;
  proxy?: Partial<Omit<NovncProxyOptions, 'authorizer' | 'logger'>>;
}

export function createConsoleProxy(deps: ConsoleProxyDeps): NovncProxy {
  const vnc = deps.config.vnc;
  const authorizer = new ConsoleAuthorizer(
    new KnexConsoleAuthTokenRepository(deps.db),
    new KnexInstanceRepository(deps.db),
    deps.portValidator ?? new RpcConsolePortValidator(deps.rpc, deps.config.DEFAULT.rpc_response_timeout * 1000),
    {
      consoleType: 'novnc',
      allowedOriginHostnames: allowedOriginHostnames(vnc.novncproxy_base_url, [vnc.novncproxy_host]),
      baseUrl: vnc.novncproxy_base_url,
      lookupTimeoutMs: 10_000,
    },
  );
  return new NovncProxy({ ...deps.proxy, authorizer, logger: deps.logger });
}
