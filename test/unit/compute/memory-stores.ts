// In-memory ComputeStores for unit tests of the compute layer: the same contract as the database
// repositories (src/db/compute-stores.ts), kept in arrays the tests can read.
import { createHash, randomUUID } from 'node:crypto';
import type { ComputeStoresShape, InstanceRecord } from '../../../src/compute/tokens.js';

export interface MemoryStores extends ComputeStoresShape {
  rows: Map<string, InstanceRecord & { displayName: string | null }>;
  faultRows: { instanceUuid: string; code: number; message: string; details: string; host: string }[];
  actionRows: { id: number; action: string; instanceUuid: string; requestId: string; userId: string | null; projectId: string | null }[];
  eventRows: { id: number; actionId: number; event: string; result: string | null; traceback: string | null }[];
  tokenRows: { tokenHash: string; consoleType: string; host: string; port: number; instanceUuid: string; expires: number }[];
  diagnosticRows: { instanceUuid: string; state: string }[];
  auditRows: { id: number; command: string; kind: string; allowed: boolean; result: string; userId: string | null; error: string | null }[];
  /** When set, audit.begin fails as a dead database would. */
  failAudit: boolean;
  /** Every state write with the expected_task_state it carried, in order. */
  saves: { uuid: string; update: Record<string, unknown>; expected: unknown }[];
  /** When set, a save whose expected_task_state does not match the row throws UnexpectedTaskStateError (as Nova's database does). */
  checkExpected: boolean;
}

export class UnexpectedTaskStateError extends Error {
  readonly className = 'UnexpectedTaskStateError';
}

export function memoryStores(): MemoryStores {
  let seq = 0;
  const s: MemoryStores = {
    rows: new Map(),
    faultRows: [],
    actionRows: [],
    eventRows: [],
    tokenRows: [],
    diagnosticRows: [],
    auditRows: [],
    failAudit: false,
    saves: [],
    checkExpected: false,
    instances: {
      track: () => undefined,
      details: (uuid) => {
        const r = s.rows.get(uuid);
        return r ? { uuid: r.uuid, vm_state: r.vmState, task_state: r.taskState, power_state: r.powerState, display_name: r.displayName } : null;
      },
      getByUuid: async (uuid) => s.rows.get(uuid) ?? null,
      getByName: async (name) => [...s.rows.values()].find((r) => r.name === name) ?? null,
      listByHost: async (host) => [...s.rows.values()].filter((r) => r.host === host),
      upsert: async (row) => {
        const prev = s.rows.get(row.uuid);
        const next = {
          uuid: row.uuid,
          id: row.id,
          name: row.name,
          host: row.host,
          vmState: row.vmState ?? prev?.vmState ?? 'active',
          taskState: row.taskState ?? prev?.taskState ?? null,
          powerState: row.powerState ?? prev?.powerState ?? null,
          projectId: row.projectId ?? prev?.projectId ?? null,
          userId: row.userId ?? prev?.userId ?? null,
          displayName: row.displayName ?? prev?.displayName ?? null,
        };
        s.rows.set(row.uuid, next);
        return next;
      },
      updateStates: async (uuid, update, opts) => {
        s.saves.push({ uuid, update: { ...update }, expected: opts?.expectedTaskState });
        const row = s.rows.get(uuid);
        if (!row) return;
        const exp = opts?.expectedTaskState;
        if (s.checkExpected && exp !== undefined) {
          const allowed = Array.isArray(exp) ? exp : [exp];
          if (!allowed.includes(row.taskState)) throw new UnexpectedTaskStateError(`Unexpected task state: expecting ${JSON.stringify(exp)} but the actual state is ${String(row.taskState)}`);
        }
        if (update.powerState !== undefined) row.powerState = update.powerState;
        if (update.vmState !== undefined) row.vmState = update.vmState;
        if (update.taskState !== undefined) row.taskState = update.taskState;
      },
    },
    faults: { record: async (f) => void s.faultRows.push(f) },
    actions: {
      eventStart: async (ctx, e) => {
        const requestId = ctx.requestId ?? 'req-none';
        let action = s.actionRows.find((r) => r.requestId === requestId && r.instanceUuid === e.instanceUuid);
        if (!action) {
          action = { id: ++seq, action: e.action, instanceUuid: e.instanceUuid, requestId, userId: ctx.userId, projectId: ctx.projectId };
          s.actionRows.push(action);
        }
        const id = ++seq;
        s.eventRows.push({ id, actionId: action.id, event: e.event, result: null, traceback: null });
        return { instanceUuid: e.instanceUuid, event: e.event, actionId: action.id, eventId: id };
      },
      eventFinish: async (_ctx, handle, o) => {
        const ev = s.eventRows.find((e) => e.id === handle.eventId);
        if (ev) Object.assign(ev, { result: o.result, traceback: o.traceback });
      },
      actionStart: async (ctx, a) => {
        s.actionRows.push({ id: ++seq, action: a.action, instanceUuid: a.instanceUuid, requestId: ctx.requestId ?? 'req-none', userId: ctx.userId, projectId: ctx.projectId });
      },
    },
    tokens: {
      authorize: async (t) => {
        const token = randomUUID();
        s.tokenRows.push({
          tokenHash: createHash('sha256').update(token).digest('hex'),
          consoleType: t.consoleType,
          host: t.host,
          port: t.port,
          instanceUuid: t.instanceUuid,
          expires: Math.floor(Date.now() / 1000) + t.ttlSeconds,
        });
        return token;
      },
      cleanExpired: async () => {
        const before = s.tokenRows.length;
        s.tokenRows = s.tokenRows.filter((r) => r.expires > Date.now() / 1000);
        return before - s.tokenRows.length;
      },
    },
    diagnostics: {
      record: async (d) => void s.diagnosticRows.push({ instanceUuid: d.instanceUuid, state: d.state }),
      deleteOlderThan: async () => 0,
    },
    audit: {
      begin: async (e) => {
        if (s.failAudit) throw new Error('database is unavailable');
        const id = ++seq;
        s.auditRows.push({ id, command: e.command, kind: e.kind, allowed: e.allowed, result: 'pending', userId: e.userId, error: null });
        return id;
      },
      finish: async (id, o) => {
        const row = s.auditRows.find((r) => r.id === id);
        if (row) Object.assign(row, { result: o.result, error: o.error });
      },
    },
  };
  return s;
}
