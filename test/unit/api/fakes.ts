// In-memory stand-ins for the API's collaborators (repositories, RPC client) for inject() tests.

import type { InstanceActionRow, InstanceActionWithEvents, ActionStart } from '../../../src/db/instance-action-repository.js';
import type { InstanceRow, StateUpdate, StateUpdateGuard } from '../../../src/db/instance-repository.js';
import { MarkerNotFound, type InstanceSearch } from '../../../src/db/instance-search.js';
import type { ApiStores, ComputeRpc } from '../../../src/api/compute-api.js';
import type { RpcTarget } from '../../../src/rpc/client.js';
import type { RequestContext } from '../../../src/context.js';

export function instanceRow(over: Partial<InstanceRow> & { uuid: string }): InstanceRow {
  return {
    id: 1,
    name: 'instance-00000001',
    host: 'host1',
    node: 'host1',
    hostname: null,
    displayName: 'vm1',
    vmState: 'active',
    taskState: null,
    powerState: 1,
    launchedAt: new Date('2024-01-02T03:04:05.678Z'),
    terminatedAt: null,
    projectId: 'p1',
    userId: 'u1',
    createdAt: new Date('2024-01-02T03:04:00Z'),
    updatedAt: new Date('2024-01-02T03:05:00Z'),
    deletedAt: null,
    deleted: 0,
    ...over,
  };
}

export class MemoryStores implements ApiStores {
  rows = new Map<string, InstanceRow>();
  actionRows: InstanceActionWithEvents[] = [];

  instances = {
    /** The real search runs in PostgreSQL (tested in test/functional); here the name matches as a substring. */
    search: async (s: InstanceSearch) => {
      const time = (r: InstanceRow) => (r.updatedAt ?? r.createdAt).getTime();
      const rows = [...this.rows.values()]
        .filter((r) => r.deleted === 0)
        .filter((r) => s.projectId === undefined || r.projectId === s.projectId)
        .filter((r) => s.userId === undefined || r.userId === s.userId)
        .filter((r) => s.host === undefined || r.host === s.host)
        .filter((r) => s.vmStates === undefined || (r.vmState !== null && s.vmStates.includes(r.vmState)))
        .filter((r) => s.nameRegex === undefined || (r.displayName ?? r.name).includes(s.nameRegex))
        .filter((r) => !s.changesSince || time(r) >= s.changesSince.getTime())
        .filter((r) => !s.changesBefore || time(r) <= s.changesBefore.getTime())
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id - a.id);
      let start = 0;
      if (s.marker !== undefined) {
        start = rows.findIndex((r) => r.uuid === s.marker) + 1;
        if (start === 0) throw new MarkerNotFound(s.marker);
      }
      return rows.slice(start, s.limit === undefined ? undefined : start + s.limit);
    },
    getByUuid: async (uuid: string) => this.rows.get(uuid) ?? null,
    updateStates: async (uuid: string, s: StateUpdate, g: StateUpdateGuard = {}) => {
      const row = this.rows.get(uuid);
      if (!row) return false;
      if (g.expectedTaskState !== undefined) {
        const allowed = Array.isArray(g.expectedTaskState) ? g.expectedTaskState : [g.expectedTaskState];
        if (!allowed.includes(row.taskState)) return false;
      }
      this.rows.set(uuid, { ...row, ...s, updatedAt: new Date() } as InstanceRow);
      return true;
    },
  };

  actions = {
    start: async (a: ActionStart) => {
      const id = this.actionRows.length + 1;
      this.actionRows.push({
        id,
        action: a.action,
        instanceUuid: a.instanceUuid,
        requestId: a.requestId,
        userId: a.userId ?? null,
        projectId: a.projectId ?? null,
        startTime: new Date(),
        finishTime: null,
        message: null,
        createdAt: new Date(),
        updatedAt: null,
        events: [],
      });
      return id;
    },
    listForInstance: async (uuid: string): Promise<InstanceActionRow[]> => this.actionRows.filter((a) => a.instanceUuid === uuid).reverse(),
    getByRequestId: async (uuid: string, req: string) => this.actionRows.find((a) => a.instanceUuid === uuid && a.requestId === req) ?? null,
  };

  add(row: InstanceRow): InstanceRow {
    this.rows.set(row.uuid, row);
    return row;
  }
}

export interface RecordedRpc {
  kind: 'call' | 'cast';
  target: RpcTarget;
  ctx: Partial<RequestContext>;
  method: string;
  args: Record<string, unknown>;
}

/** Records calls and casts; `answer` decides what a call returns or throws. */
export class FakeRpc implements ComputeRpc {
  sent: RecordedRpc[] = [];
  answer: (method: string, args: Record<string, unknown>) => unknown = () => null;

  async call(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>): Promise<unknown> {
    this.sent.push({ kind: 'call', target, ctx, method, args });
    return this.answer(method, args);
  }

  async cast(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>): Promise<void> {
    this.sent.push({ kind: 'cast', target, ctx, method, args });
  }
}
