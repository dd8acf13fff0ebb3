// What novamon-manage reads from novamon's own database (actions with their events, faults, the schema
// version): read directly by novamon-manage, or, when a running novamon-compute holds the embedded
// database, by that service on its behalf (novamon RPC namespace 1.1).

import type { Database } from '../db/knex.js';
import { KnexInstanceActionRepository } from '../db/instance-action-repository.js';
import { KnexInstanceFaultRepository } from '../db/instance-fault-repository.js';
import { schemaVersion } from '../db/migrate.js';
import type { ManageRecords } from '../rpc/endpoints/novamon.js';

export function databaseRecords(db: Database): ManageRecords {
  const actions = new KnexInstanceActionRepository(db);
  return {
    async instanceActions(instanceUuid) {
      const list = await actions.listForInstance(instanceUuid);
      return Promise.all(list.map(async (a) => (await actions.getByRequestId(instanceUuid, a.requestId)) ?? a));
    },
    instanceFaults: (instanceUuid) => new KnexInstanceFaultRepository(db).listForInstance(instanceUuid),
    schemaVersion: () => schemaVersion(db),
  };
}
