// In-memory ComputeStores for unit tests of the compute layer: the same contract as the database
// repositories (src/db/compute-stores.ts), kept in arrays the tests can read.
import { createHash } from 'node:crypto';
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
    instances: {
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
      updateStates: async (uuid, update) => {
        const row = s.rows.get(uuid);
        if (!row) return;
        if (update.powerState !== undefined) row.powerState = update.powerState;
        if (update.vmState !== undefined) row.vmState = update.vmState;
        if (update.taskState !== undefined) row.taskState = update.taskState;
      },
    },
    faults: { record: async (f) => void s.faultRows.push(f) },
    actions: {
      start: async (a) => {
        const existing = s.actionRows.find((r) => r.requestId === a.requestId && r.instanceUuid === a.instanceUuid);
        if (existing) return existing.id;
        const id = ++seq;
        s.actionRows.push({ id, ...a });
        return id;
      },
      startEvent: async (actionId, event) => {
        const id = ++seq;
        s.eventRows.push({ id, actionId, event, result: null, traceback: null });
        return id;
      },
      finishEvent: async (_actionId, eventId, result, traceback) => {
        const ev = s.eventRows.find((e) => e.id === eventId);
        if (ev) Object.assign(ev, { result, traceback });
      },
    },
    tokens: {
      create: async (t) =>
        void s.tokenRows.push({
          tokenHash: createHash('sha256').update(t.token).digest('hex'),
          consoleType: t.consoleType,
          host: t.host,
          port: t.port,
          instanceUuid: t.instanceUuid,
          expires: Math.floor(Date.now() / 1000) + t.ttlSeconds,
        }),
    },
    diagnostics: { record: async (d) => void s.diagnosticRows.push({ instanceUuid: d.instanceUuid, state: d.state }) },
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
