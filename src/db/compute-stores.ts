// The compute layer's stores (src/compute/tokens.ts) on top of the knex repositories: one place that
// says which repository call each compute need maps to.

import type { ComputeStoresShape, InstanceRecord } from '../compute/tokens.js';
import type { Logger } from '../logging.js';
import { KnexConsoleAuthTokenRepository } from './console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from './diagnostics-repository.js';
import { KnexInstanceActionRepository } from './instance-action-repository.js';
import { KnexInstanceFaultRepository } from './instance-fault-repository.js';
import { KnexInstanceRepository, type InstanceRow } from './instance-repository.js';
import type { Database } from './knex.js';
import { KnexMonitorAuditRepository } from './monitor-audit-repository.js';

function record(row: InstanceRow): InstanceRecord {
  return {
    uuid: row.uuid,
    id: row.id,
    name: row.name,
    host: row.host,
    vmState: row.vmState,
    taskState: row.taskState,
    powerState: row.powerState,
    projectId: row.projectId,
    userId: row.userId,
  };
}

export interface ComputeStoresWithClose extends ComputeStoresShape {
  /** Flushes batched writes. */
  close(): Promise<void>;
}

export function createComputeStores(db: Database, _logger?: Logger): ComputeStoresWithClose {
  const instances = new KnexInstanceRepository(db);
  const faults = new KnexInstanceFaultRepository(db);
  const actions = new KnexInstanceActionRepository(db);
  const tokens = new KnexConsoleAuthTokenRepository(db);
  const diagnostics = new KnexDiagnosticsRepository(db);
  const audit = new KnexMonitorAuditRepository(db);
  return {
    instances: {
      getByUuid: async (uuid) => {
        const row = await instances.getByUuid(uuid);
        return row ? record(row) : null;
      },
      getByName: async (name) => {
        const row = await instances.getByName(name);
        return row ? record(row) : null;
      },
      listByHost: async (host) => (await instances.list({ host })).map(record),
      upsert: async (row) => {
        if (row.id === null) throw new Error(`instance ${row.name} has no id: its name does not carry one`);
        return record(await instances.upsertFromRpc({ ...row, id: row.id }));
      },
      updateStates: async (uuid, update) => {
        await instances.updateStates(uuid, update);
      },
    },
    faults: {
      record: async (fault) => {
        await faults.record(fault);
      },
    },
    actions: {
      start: (action) => actions.start(action),
      startEvent: (actionId, event, host) => actions.startEvent(actionId, event, host),
      finishEvent: async (actionId, eventId, result, traceback) => {
        await actions.finishEvent(eventId, result, traceback);
        await actions.finish(actionId);
      },
    },
    tokens: {
      create: async (token) => {
        await tokens.create(token);
      },
    },
    diagnostics: { record: (snapshot) => diagnostics.record(snapshot) },
    audit: {
      begin: (entry) => audit.begin(entry),
      finish: (id, outcome) => audit.finish(id, outcome),
    },
    close: () => diagnostics.close(),
  };
}
