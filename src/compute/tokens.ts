// Service identifiers and the ports the compute layer needs from its surroundings: its settings
// (from the configuration) and the stores it records into (implemented by src/db repositories).

import type { Logger } from '../logging.js';
import type { Diagnostics, LegacyDiagnostics } from '../virt/driver.js';

export const ComputeSettings = Symbol.for('novamon.ComputeSettings');
export const ComputeStores = Symbol.for('novamon.ComputeStores');
export const ComputeLogger = Symbol.for('novamon.ComputeLogger');

export interface ComputeSettingsShape {
  host: string;
  instanceNameTemplate: string;
  shutdownTimeout: number;
  shutdownRetryInterval: number;
  tokenTtl: number;
  vncEnabled: boolean;
  novncProxyBaseUrl: string;
  vncProxyClientAddress: string;
  serialEnabled: boolean;
  serialBaseUrl: string;
  serialProxyClientAddress: string;
  syncPowerStateInterval: number;
  defaultInstanceProject: string;
  defaultInstanceUser: string;
  monitorAllowedCommands: string[];
}

/** An instances row as the compute layer reads it. */
export interface InstanceRecord {
  uuid: string;
  id: number | null;
  name: string;
  host: string | null;
  vmState: string | null;
  taskState: string | null;
  powerState: number | null;
  projectId: string | null;
  userId: string | null;
}

export interface InstanceStatesUpdate {
  powerState?: number;
  vmState?: string;
  taskState?: string | null;
}

export interface InstanceStore {
  getByUuid(uuid: string): Promise<InstanceRecord | null>;
  getByName(name: string): Promise<InstanceRecord | null>;
  listByHost(host: string): Promise<InstanceRecord[]>;
  /** Insert or update a row from what a caller or the hypervisor told us; returns the row. */
  upsert(row: {
    uuid: string;
    id: number | null;
    name: string;
    host: string;
    node: string;
    powerState?: number | null;
    vmState?: string | null;
    taskState?: string | null;
    displayName?: string | null;
    projectId?: string | null;
    userId?: string | null;
  }): Promise<InstanceRecord>;
  updateStates(uuid: string, update: InstanceStatesUpdate): Promise<void>;
}

export interface FaultStore {
  record(fault: { instanceUuid: string; code: number; message: string; details: string; host: string }): Promise<void>;
}

export interface ActionStore {
  /** Nova's InstanceAction.action_start, reusing the action of the same request id. */
  start(action: { action: string; instanceUuid: string; requestId: string; userId: string | null; projectId: string | null }): Promise<number>;
  startEvent(actionId: number, event: string, host: string): Promise<number>;
  finishEvent(actionId: number, eventId: number, result: 'Success' | 'Error', traceback: string | null): Promise<void>;
}

export interface ConsoleTokenStore {
  create(token: {
    token: string;
    consoleType: string;
    host: string;
    port: number;
    internalAccessPath: string | null;
    instanceUuid: string;
    accessUrlBase: string;
    ttlSeconds: number;
  }): Promise<void>;
}

export interface DiagnosticsStore {
  /** Queued and written in batches: resolves after the row is committed. */
  record(snapshot: { instanceUuid: string; host: string; state: string; diagnostics: Diagnostics | null; legacy: LegacyDiagnostics | null }): Promise<void>;
}

export interface MonitorAuditStore {
  /** Durable before the command runs: a command whose audit row cannot be written is refused. */
  begin(entry: {
    instanceUuid: string;
    instanceName: string;
    host: string;
    requestId: string | null;
    userId: string | null;
    projectId: string | null;
    kind: 'qmp' | 'hmp';
    command: string;
    arguments: Record<string, unknown> | null;
    allowed: boolean;
  }): Promise<number>;
  finish(id: number, outcome: { result: 'ok' | 'error' | 'refused'; error: string | null; durationMs: number }): Promise<void>;
}

export interface ComputeStoresShape {
  instances: InstanceStore;
  faults: FaultStore;
  actions: ActionStore;
  tokens: ConsoleTokenStore;
  diagnostics: DiagnosticsStore;
  audit: MonitorAuditStore;
}

export type { Logger };
