// Service identifiers and the ports the compute layer needs from its surroundings: its settings
// (from the configuration) and the stores it records into (implemented by src/db repositories).

import type { RequestContext } from '../context.js';
import type { Logger } from '../logging.js';
import type { Diagnostics, LegacyDiagnostics } from '../virt/driver.js';

export const ComputeSettings = Symbol.for('novamon.ComputeSettings');
export const ComputeStores = Symbol.for('novamon.ComputeStores');
export const ComputeLogger = Symbol.for('novamon.ComputeLogger');
export const ComputeNotifier = Symbol.for('novamon.ComputeNotifier');

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
  /** Where passthrough commands may write files (instances_path); unset: nowhere. */
  instancesPath?: string;
  /** URI schemes the passthrough's migrate may use. */
  monitorMigrateUriSchemes?: string[];
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
  progress?: number;
}

/** Nova's expected_task_state: the task_state(s) the stored instance must have for a save to apply. */
export type ExpectedTaskState = string | null | ReadonlyArray<string | null>;

export interface SaveOptions {
  /** Checked by stores that hold Nova's instance database (UnexpectedTaskStateError on a mismatch). */
  expectedTaskState?: ExpectedTaskState;
  /** The request the write belongs to (Nova saves under the caller's context). */
  ctx?: RequestContext;
}

/** Nova's UnexpectedTaskStateError (or UnexpectedDeletingTaskStateError): another task pre-empted this one. */
export function isUnexpectedTaskState(err: unknown): boolean {
  const name = (err as { className?: unknown } | null)?.className;
  return name === 'UnexpectedTaskStateError' || name === 'UnexpectedDeletingTaskStateError';
}

export interface InstanceStore {
  getByUuid(uuid: string): Promise<InstanceRecord | null>;
  getByName(name: string): Promise<InstanceRecord | null>;
  listByHost(host: string): Promise<InstanceRecord[]>;
  /**
   * Insert or update a row from what a caller or the hypervisor told us; returns the row, or null
   * when this store does not record guests on its own (Nova's database: only Nova creates instances).
   */
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
  }): Promise<InstanceRecord | null>;
  /**
   * The Instance object a compute RPC caller sent (a NovaObject primitive), before the method runs:
   * a store that writes through Nova's conductor saves on top of it, as nova-compute saves the
   * instance it was handed. Stores with their own rows ignore it.
   */
  track(uuid: string, primitive: unknown): void;
  /** Nova's instance.save(): the given fields, under `opts.expectedTaskState` where the store checks it. */
  updateStates(uuid: string, update: InstanceStatesUpdate, opts?: SaveOptions): Promise<void>;
  /** Every field the store holds for the instance (Instance primitive data; for notifications), or null. */
  details(uuid: string): Record<string, unknown> | null;
  /**
   * The live rows as novamon-manage prints them (every stored field, dates as ISO strings), of one host
   * or of all; for list_instances. Stores that keep no rows of their own leave it out.
   */
  listRows?(filter: { host?: string }): Promise<Array<Record<string, unknown>>>;
}

export interface FaultStore {
  /** Nova's add_instance_fault_from_exc (InstanceFault.create). */
  record(fault: { instanceUuid: string; code: number; message: string; details: string; host: string }, ctx?: RequestContext): Promise<void>;
}

/** What finishing an event needs; opaque to the compute layer. */
export interface ActionEventHandle {
  readonly instanceUuid: string;
  readonly event: string;
  readonly actionId?: number;
  readonly eventId?: number;
}

export interface ActionStore {
  /**
   * Nova's EventReporter enter (InstanceActionEvent.event_start): an event under the action of the
   * caller's request id. The standalone database also creates that action when no API did.
   */
  eventStart(ctx: RequestContext, e: { instanceUuid: string; action: string; event: string; host: string }): Promise<ActionEventHandle>;
  /** event_finish_with_failure: Success, or Error with the message (details) and traceback. */
  eventFinish(
    ctx: RequestContext,
    handle: ActionEventHandle,
    outcome: { result: 'Success' | 'Error'; details: string | null; traceback: string | null },
  ): Promise<void>;
  /**
   * The operation's last instance save (Nova's instance.save; `expectedTaskState` as in SaveOptions)
   * and its event's Success, written together where the store can: novamon's database commits both in
   * one statement, so no reader sees the new states under an open event. Stores without it save, then
   * finish (nova-compute's order: the save inside the method, the finish as wrap_instance_event exits).
   */
  saveAndFinishEvent?(ctx: RequestContext, handle: ActionEventHandle, save: { uuid: string; update: InstanceStatesUpdate; expectedTaskState?: ExpectedTaskState }): Promise<void>;
  /** Nova's InstanceAction.action_start, for actions the compute host starts itself. */
  actionStart(ctx: RequestContext, a: { instanceUuid: string; action: string }): Promise<void>;
}

export interface ConsoleTokenStore {
  /** Nova's ConsoleAuthToken.authorize: stores the token's hash and returns the token in clear. */
  authorize(
    token: {
      consoleType: string;
      host: string;
      port: number;
      internalAccessPath: string | null;
      instanceUuid: string;
      accessUrlBase: string;
      ttlSeconds: number;
    },
    ctx?: RequestContext,
  ): Promise<string>;
  /** Nova's ConsoleAuthToken.clean_expired_console_auths: drops every expired token; how many, when known. */
  cleanExpired(): Promise<number | null>;
}

export interface DiagnosticsStore {
  /** Queued and written in batches: resolves after the row is committed. */
  record(snapshot: { instanceUuid: string; host: string; state: string; diagnostics: Diagnostics | null; legacy: LegacyDiagnostics | null }): Promise<void>;
  /** Retention: drops `host`'s snapshots captured before `cutoff`; returns how many. */
  deleteOlderThan(cutoff: Date, host: string): Promise<number>;
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

export type InstanceActionName = 'power_off' | 'power_on' | 'pause' | 'unpause' | 'reboot';

/**
 * Where Nova's manager notifies (_notify_about_instance_usage + notify_about_instance_action, and
 * wrap_exception). Fire and forget: an implementation queues, logs its own failures, never throws.
 */
export interface ComputeNotifierShape {
  instanceAction(ctx: RequestContext, instance: { uuid: string; name: string }, action: InstanceActionName, phase: 'start' | 'end' | 'error', error?: unknown): void;
  exception(ctx: RequestContext, instance: { uuid: string; name: string }, method: string, error: unknown): void;
}

/** The notifier of a deployment that sends no notifications. */
export const noNotifications: ComputeNotifierShape = {
  instanceAction: () => undefined,
  exception: () => undefined,
};

export type { Logger };
