// What Nova's compute API (nova/compute/api.py) does for the operations novamon-api serves: scoped
// instance lookups, the vm_state/task_state/host preconditions, task_state and the instance action
// written before a power operation is cast, and the RPC calls and casts to compute.<instance host>.

import type { RequestContext } from '../context.js';
import type { InstanceActionRepository } from '../db/instance-action-repository.js';
import type { InstanceFaultRepository } from '../db/instance-fault-repository.js';
import type { InstanceRepository, InstanceRow } from '../db/instance-repository.js';
import { DEFAULT_SEARCH_TIMEOUT_MS, MarkerNotFound, SearchTimeout, type InstanceSearch } from '../db/instance-search.js';
import { TaskState, VmState } from '../compute/states.js';
import type { Logger } from '../logging.js';
import type { RpcTarget } from '../rpc/client.js';
import { instancePrimitive } from '../rpc/objects/instance.js';
import { badRequest, conflict, faultFromError, invalidStateConflict, notFound, pyStr } from './faults.js';

export const ComputeApiId = Symbol.for('novamon.ComputeApi');

/** The repository calls the API makes (the knex repositories satisfy this). */
export interface ApiStores {
  instances: Pick<InstanceRepository, 'search' | 'getByUuid' | 'updateStates'>;
  actions: Pick<InstanceActionRepository, 'start' | 'listForInstance' | 'getByRequestId'>;
  faults?: Pick<InstanceFaultRepository, 'listForInstance'>;
}

/** The RPC client calls the API makes (RpcClient satisfies this). */
export interface ComputeRpc {
  call(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<unknown>;
  cast(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>): Promise<void>;
}

export interface ComputeApiSettings {
  /** rpc_response_timeout, seconds. */
  rpcTimeoutSeconds: number;
  /** Compute RPC API version sent (Zed: 6.0). */
  rpcVersion?: string;
  /** Statement timeout of a server list query, ms (default 5 s). */
  listTimeoutMs?: number;
}

/** The request context the API works under (noauth2 or Keystone identity, plus the request ids). */
export type ApiContext = RequestContext & { userName?: string | null; projectName?: string | null };

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

export function isUuidLike(id: string): boolean {
  return UUID_RE.test(id);
}

/** Canonical dashed lower-case uuid (Nova accepts the 32-hex form too). */
export function canonicalUuid(id: string): string {
  const hex = id.replaceAll('-', '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface ServerListFilter {
  /** Admin with all_tenants: every project (or `projectId` if given). */
  allTenants: boolean;
  projectId?: string;
  name?: string;
  vmStates?: string[];
  host?: string;
  changesSince?: Date;
  changesBefore?: Date;
  /** Page size and the uuid the page starts after (Nova's limit and marker). */
  limit?: number;
  marker?: string;
}

type PowerOp = 'stop' | 'start' | 'pause' | 'unpause' | 'reboot';

interface PowerSpec {
  vmStates: readonly string[];
  /** task_states the operation may start from. */
  taskStates: ReadonlyArray<string | null>;
  taskState: string;
  method: string;
  checkHost: boolean;
}

/** Nova's vm_states.ALLOW_TRIGGER_CRASH_DUMP. */
const ALLOW_TRIGGER_CRASH_DUMP: readonly string[] = [VmState.ACTIVE, VmState.PAUSED, VmState.RESCUED, VmState.RESIZED, VmState.ERROR];

const ALLOW_HARD_REBOOT_TASKS = [null, 'rebooting', 'reboot_pending', 'reboot_started', 'resuming', 'rebooting_hard', 'unpausing', 'pausing', 'suspending'];

const POWER_OPS: Record<PowerOp | 'reboot_hard', PowerSpec> = {
  stop: { vmStates: [VmState.ACTIVE, VmState.ERROR], taskStates: [null], taskState: TaskState.POWERING_OFF, method: 'stop_instance', checkHost: true },
  start: { vmStates: [VmState.STOPPED], taskStates: [null], taskState: TaskState.POWERING_ON, method: 'start_instance', checkHost: true },
  pause: { vmStates: [VmState.ACTIVE], taskStates: [null], taskState: TaskState.PAUSING, method: 'pause_instance', checkHost: false },
  unpause: { vmStates: [VmState.PAUSED], taskStates: [null], taskState: TaskState.UNPAUSING, method: 'unpause_instance', checkHost: false },
  reboot: { vmStates: [VmState.ACTIVE], taskStates: [null], taskState: TaskState.REBOOTING, method: 'reboot_instance', checkHost: false },
  reboot_hard: {
    vmStates: [VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED, VmState.ERROR],
    taskStates: ALLOW_HARD_REBOOT_TASKS,
    taskState: TaskState.REBOOTING_HARD,
    method: 'reboot_instance',
    checkHost: false,
  },
};

export class ComputeApi {
  private readonly version: string;

  constructor(
    private readonly stores: ApiStores,
    private readonly rpc: ComputeRpc,
    private readonly settings: ComputeApiSettings,
    private readonly log: Logger,
  ) {
    this.version = settings.rpcVersion ?? '6.0';
  }

  /**
   * Nova's compute_api.get: uuids only; a non-admin sees only its project's instances (another
   * project's server is simply not found, before any policy check).
   */
  async get(ctx: ApiContext, id: string, opts: { includeDeleted?: boolean } = {}): Promise<InstanceRow> {
    if (!isUuidLike(id)) throw notFound(`Instance ${id} could not be found.`);
    const row = await this.stores.instances.getByUuid(canonicalUuid(id), opts);
    if (!row || (!ctx.isAdmin && row.projectId !== ctx.projectId)) throw notFound(`Instance ${id} could not be found.`);
    return row;
  }

  /**
   * One page of the server list, newest first (Nova's default sort: created_at desc, id desc). The
   * database filters, sorts and pages; the name pattern runs there under a statement timeout.
   */
  async list(ctx: ApiContext, f: ServerListFilter): Promise<InstanceRow[]> {
    const projectId = f.allTenants ? f.projectId : (ctx.projectId ?? undefined);
    const search: InstanceSearch = { timeoutMs: this.settings.listTimeoutMs ?? DEFAULT_SEARCH_TIMEOUT_MS };
    if (projectId !== undefined) search.projectId = projectId;
    if (!f.allTenants && ctx.projectId === null && ctx.userId !== null) search.userId = ctx.userId;
    if (f.name !== undefined) search.nameRegex = f.name;
    if (f.vmStates !== undefined) search.vmStates = f.vmStates;
    if (f.host !== undefined) search.host = f.host;
    if (f.changesSince) search.changesSince = f.changesSince;
    if (f.changesBefore) search.changesBefore = f.changesBefore;
    if (f.marker !== undefined) search.marker = f.marker;
    if (f.limit !== undefined) search.limit = f.limit;
    try {
      return await this.stores.instances.search(search);
    } catch (err) {
      if (err instanceof MarkerNotFound) throw badRequest(err.message);
      if (err instanceof SearchTimeout) {
        this.log.warn({ project_id: ctx.projectId, name: f.name?.slice(0, 200), timeoutMs: err.timeoutMs }, 'server list cancelled at its statement timeout');
        throw badRequest(`Invalid input for query parameters name: the filter could not be evaluated within ${err.timeoutMs / 1000} s`);
      }
      throw err;
    }
  }

  /** Newest first. */
  listActions(uuid: string) {
    return this.stores.actions.listForInstance(uuid);
  }

  getAction(uuid: string, requestId: string) {
    return this.stores.actions.getByRequestId(uuid, requestId);
  }

  async latestFault(uuid: string) {
    if (!this.stores.faults) return null;
    const [fault] = await this.stores.faults.listForInstance(uuid, { limit: 1 });
    return fault ?? null;
  }

  /** stop / start / pause / unpause / reboot: preconditions, task_state, instance action, cast. */
  async powerAction(ctx: ApiContext, row: InstanceRow, op: PowerOp, opts: { rebootType?: 'SOFT' | 'HARD'; serverId: string }): Promise<void> {
    const spec = POWER_OPS[op === 'reboot' && opts.rebootType === 'HARD' ? 'reboot_hard' : op];
    const host = this.requireHost(row, spec.checkHost);
    if (!spec.vmStates.includes(row.vmState ?? '')) {
      throw invalidStateConflict({ attr: 'vm_state', state: row.vmState }, op, opts.serverId);
    }
    if (!spec.taskStates.includes(row.taskState)) {
      throw invalidStateConflict({ attr: 'task_state', state: row.taskState }, op, opts.serverId);
    }
    const changed = await this.stores.instances.updateStates(row.uuid, { taskState: spec.taskState }, { expectedTaskState: spec.taskStates });
    if (!changed) {
      // Someone else changed task_state between our read and the write (Nova's UnexpectedTaskStateError).
      const now = await this.stores.instances.getByUuid(row.uuid);
      throw conflict(`Cannot '${op}' instance ${opts.serverId} while it is in task_state ${pyStr(now?.taskState ?? null)}`);
    }
    const requestId = ctx.requestId ?? '';
    await this.stores.actions.start({ action: op, instanceUuid: row.uuid, requestId, userId: ctx.userId, projectId: ctx.projectId });
    const instance = this.instanceArg({ ...row, taskState: spec.taskState }, host);
    const args: Record<string, unknown> =
      op === 'stop'
        ? { instance, clean_shutdown: true }
        : op === 'reboot'
          ? { instance, block_device_info: null, reboot_type: opts.rebootType ?? 'SOFT' }
          : { instance };
    try {
      await this.rpc.cast(this.target(host), this.rpcContext(ctx), spec.method, args);
    } catch (err) {
      // The cast never left: put task_state back so the server is not stuck in powering-off.
      await this.stores.instances.updateStates(row.uuid, { taskState: row.taskState }, { expectedTaskState: spec.taskState }).catch(() => false);
      this.log.error({ instance_uuid: row.uuid, request_id: requestId, err: (err as Error).message }, `${spec.method} cast failed`);
      throw faultFromError(err, op, opts.serverId);
    }
    this.log.info({ instance_uuid: row.uuid, request_id: requestId, host }, `${spec.method} cast`);
  }

  async getConsoleOutput(ctx: ApiContext, row: InstanceRow, length: unknown, serverId: string): Promise<string> {
    const host = this.requireHost(row, true);
    const result = await this.call(ctx, row, host, 'get_console_output', { tail_length: length ?? null }, 'get_console_output', serverId);
    return typeof result === 'string' ? result : '';
  }

  /** get_vnc_console / get_serial_console; returns the access URL. */
  async getConsoleUrl(ctx: ApiContext, row: InstanceRow, method: 'get_vnc_console' | 'get_serial_console', consoleType: string, serverId: string): Promise<string> {
    const host = this.requireHost(row, true);
    if (row.taskState === 'deleting' || row.taskState === 'migrating') {
      throw invalidStateConflict({ attr: 'task_state', state: row.taskState }, method, serverId);
    }
    const result = await this.call(ctx, row, host, method, { console_type: consoleType }, method, serverId);
    const url = (result as { access_url?: unknown } | null)?.access_url;
    return typeof url === 'string' ? url : '';
  }

  /** get_instance_diagnostics (2.48+) or the legacy get_diagnostics dict. */
  async getDiagnostics(ctx: ApiContext, row: InstanceRow, standard: boolean, serverId: string): Promise<unknown> {
    const host = this.requireHost(row, true);
    return this.call(ctx, row, host, standard ? 'get_instance_diagnostics' : 'get_diagnostics', {}, 'get_diagnostics', serverId);
  }

  /**
   * Nova's trigger_crash_dump: vm_state in ALLOW_TRIGGER_CRASH_DUMP, no task, the action recorded,
   * then a cast (the compute host records the event, or a fault when the guest is not running).
   */
  async triggerCrashDump(ctx: ApiContext, row: InstanceRow, serverId: string): Promise<void> {
    const op = 'trigger_crash_dump';
    const host = this.requireHost(row, true);
    if (!ALLOW_TRIGGER_CRASH_DUMP.includes(row.vmState ?? '')) throw invalidStateConflict({ attr: 'vm_state', state: row.vmState }, op, serverId);
    if (row.taskState !== null) throw invalidStateConflict({ attr: 'task_state', state: row.taskState }, op, serverId);
    const requestId = ctx.requestId ?? '';
    await this.stores.actions.start({ action: op, instanceUuid: row.uuid, requestId, userId: ctx.userId, projectId: ctx.projectId });
    try {
      await this.rpc.cast(this.target(host), this.rpcContext(ctx), op, { instance: this.instanceArg(row, host) });
    } catch (err) {
      this.log.error({ instance_uuid: row.uuid, request_id: requestId, err: (err as Error).message }, 'trigger_crash_dump cast failed');
      throw faultFromError(err, op, serverId);
    }
  }

  /** novamon's get_screenshot, in novamon's RPC namespace: the PNG bytes. */
  async screenshot(ctx: ApiContext, row: InstanceRow, serverId: string): Promise<Buffer> {
    const host = this.requireHost(row, true);
    try {
      const target = { ...this.target(host), namespace: 'novamon', version: '1.0' };
      const reply = (await this.rpc.call(target, this.rpcContext(ctx), 'get_screenshot', { instance: this.instanceArg(row, host) })) as { data?: unknown } | null;
      if (typeof reply?.data !== 'string') throw new Error('get_screenshot answered without image data');
      return Buffer.from(reply.data, 'base64');
    } catch (err) {
      this.log.warn({ instance_uuid: row.uuid, request_id: ctx.requestId, method: 'get_screenshot', err: (err as Error).message }, 'compute RPC failed');
      throw faultFromError(err, 'screenshot', serverId, { host, seconds: this.settings.rpcTimeoutSeconds });
    }
  }

  async monitorCommand(ctx: ApiContext, row: InstanceRow, command: string, hmp: boolean, serverId: string): Promise<unknown> {
    const host = this.requireHost(row, true);
    return this.call(ctx, row, host, 'monitor_command', { command, hmp }, 'monitor_command', serverId);
  }

  /**
   * Nova's check_instance_host (InstanceNotReady, 409). Operations Nova does not guard this way still
   * need a host to cast to, so they get the same answer instead of a message sent nowhere.
   */
  private requireHost(row: InstanceRow, _novaChecks: boolean): string {
    if (!row.host) throw conflict(`Instance ${row.uuid} has not been scheduled.`);
    return row.host;
  }

  private async call(ctx: ApiContext, row: InstanceRow, host: string, method: string, args: Record<string, unknown>, op: string, serverId: string): Promise<unknown> {
    try {
      return await this.rpc.call(this.target(host), this.rpcContext(ctx), method, { instance: this.instanceArg(row, host), ...args });
    } catch (err) {
      this.log.warn({ instance_uuid: row.uuid, request_id: ctx.requestId, method, err: (err as Error).message }, 'compute RPC failed');
      throw faultFromError(err, op, serverId, { host, seconds: this.settings.rpcTimeoutSeconds });
    }
  }

  private target(host: string): RpcTarget {
    return { topic: 'compute', server: host, version: this.version };
  }

  private instanceArg(row: InstanceRow, host: string) {
    return instancePrimitive({
      uuid: row.uuid,
      id: row.id,
      host,
      node: row.node,
      vmState: row.vmState,
      taskState: row.taskState,
      powerState: row.powerState,
      displayName: row.displayName,
      projectId: row.projectId,
      userId: row.userId,
    });
  }

  /** The context passed to compute, with the keys Nova's RequestContext.to_dict carries. */
  private rpcContext(ctx: ApiContext): Partial<RequestContext> {
    return {
      userId: ctx.userId,
      projectId: ctx.projectId,
      isAdmin: ctx.isAdmin,
      roles: ctx.roles,
      requestId: ctx.requestId,
      globalRequestId: ctx.globalRequestId,
      raw: {
        user_name: ctx.userName ?? null,
        project_name: ctx.projectName ?? null,
        read_deleted: 'no',
        show_deleted: false,
        remote_address: (ctx.raw['remote_address'] as string | undefined) ?? null,
      },
    };
  }
}

