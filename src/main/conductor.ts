// `[DEFAULT] instance_store = conductor`: the compute stores on a Nova cloud's database through
// nova-conductor (instances, actions, faults, console tokens), with diagnostics and the monitor audit
// kept in novamon's own database, and the nova-compute service membership that goes with it.

import type { Config } from '../config/options.js';
import { ConductorClient } from '../conductor/client.js';
import { ServiceMembership } from '../conductor/service-membership.js';
import { conductorStores } from '../conductor/stores.js';
import type { Database } from '../db/knex.js';
import type { Logger } from '../logging.js';
import type { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import type { RpcClient } from '../rpc/client.js';
import { InstanceNameTemplate } from '../virt/instance-name.js';
import { createComputeStores, type ComputeStoresWithClose } from './compute-stores.js';
import { rpcClient } from './service.js';

export interface CloudMember {
  conductor: ConductorClient;
  membership: ServiceMembership;
  rpc: RpcClient;
}

/** The conductor client (on the service's own AMQP connection) and the service membership. */
export function cloudMember(config: Config, connection: AmqpConnectionManager, logger: Logger): CloudMember {
  const rpc = rpcClient(config, connection, logger);
  const conductor = new ConductorClient(rpc, logger);
  const membership = new ServiceMembership(conductor, { host: config.DEFAULT.host, reportInterval: config.DEFAULT.report_interval, logger });
  return { conductor, membership, rpc };
}

/** The compute stores of a Nova cloud member; `local` stores (diagnostics, audit) use novamon's database. */
export function conductorComputeStores(config: Config, db: Database, logger: Logger, conductor: ConductorClient, spoolDir: string): ComputeStoresWithClose {
  const local = createComputeStores(db, logger, { spoolDir });
  const stores = conductorStores({
    conductor,
    nameTemplate: new InstanceNameTemplate(config.DEFAULT.instance_name_template),
    logger,
    local,
  });
  return { ...stores, spoolStats: () => local.spoolStats(), close: () => local.close() };
}
