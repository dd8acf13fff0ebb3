// The compute layer's instance, fault, action and console-token stores on Nova's own database, reached
// through nova-conductor as nova-compute reaches it: Instance.get_by_uuid / get_by_id, InstanceList
// .get_by_host, Instance.save with expected_task_state, InstanceActionEvent.event_start /
// event_finish_with_failure, InstanceAction.action_start, InstanceFault.create, ConsoleAuthToken.authorize.
// Diagnostics snapshots and the monitor audit are novamon's own and stay in its database.

import type { RequestContext } from '../context.js';
import { InstanceNotFound } from '../exception.js';
import type {
  ActionEventHandle,
  ActionStore,
  ComputeStoresShape,
  ConsoleTokenStore,
  FaultStore,
  InstanceRecord,
  InstanceStatesUpdate,
  InstanceStore,
  SaveOptions,
} from '../compute/tokens.js';
import type { Logger } from '../logging.js';
import type { InstanceNameTemplate } from '../virt/instance-name.js';
import { type ConductorClient, conductorAdminContext, isConductorError, objectVersion } from './client.js';
import { RemoteObject } from './remote-object.js';

/** Fields read with every instance this host fetches (flavor: for notification payloads). */
const EXPECTED_ATTRS = ['flavor'];
const CACHE_LIMIT = 10_000;

const FIELD_OF: Record<keyof InstanceStatesUpdate, string> = {
  powerState: 'power_state',
  vmState: 'vm_state',
  taskState: 'task_state',
  progress: 'progress',
};

export interface ConductorStoresOptions {
  conductor: ConductorClient;
  nameTemplate: InstanceNameTemplate;
  logger: Logger;
  /** novamon's own database keeps these (Nova has no table for them). */
  local: Pick<ComputeStoresShape, 'diagnostics' | 'audit'>;
}

export type ConductorStores = ComputeStoresShape;

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** Instances: read through the conductor and kept (the newest this host holds per uuid), saved with Instance.save. */
export class ConductorInstanceStore implements InstanceStore {
  // The newest Instance this host holds for each uuid: from the conductor, or as a compute RPC caller sent it.
  private readonly cache = new Map<string, RemoteObject>();

  constructor(
    private readonly conductor: ConductorClient,
    private readonly nameTemplate: InstanceNameTemplate,
    private readonly log: Logger,
  ) {}

  track(uuid: string, primitive: unknown): void {
    try {
      const obj = RemoteObject.fromPrimitive(primitive, 'Instance');
      if (str(obj.get('uuid'))?.toLowerCase() === uuid) this.keep(obj);
    } catch (err) {
      this.log.debug({ instance_uuid: uuid, err: String(err) }, 'caller sent no Instance primitive to keep');
    }
  }

  details(uuid: string): Record<string, unknown> | null {
    return this.cache.get(uuid)?.fields() ?? null;
  }

  async getByUuid(uuid: string): Promise<InstanceRecord | null> {
    const obj = await this.fetchOne('get_by_uuid', uuid, conductorAdminContext());
    return obj ? this.record(obj) : null;
  }

  async getByName(name: string): Promise<InstanceRecord | null> {
    const id = this.nameTemplate.parseId(name);
    if (id === null) return null;
    const obj = await this.fetchOne('get_by_id', id, conductorAdminContext());
    return obj ? this.record(obj) : null;
  }

  async listByHost(host: string): Promise<InstanceRecord[]> {
    const reply = await this.conductor.classAction(conductorAdminContext(), 'InstanceList', 'get_by_host', [host], { expected_attrs: EXPECTED_ATTRS, use_slave: false });
    const objects = (RemoteObject.fromPrimitive(reply, 'InstanceList').get('objects') ?? []) as unknown[];
    return objects.map((p) => this.record(this.keep(RemoteObject.fromPrimitive(p, 'Instance'))));
  }

  /** Only Nova creates instances: a guest it has no record of is not written anywhere. */
  async upsert(row: { uuid: string }): Promise<InstanceRecord | null> {
    const known = this.cache.get(row.uuid);
    return known ? this.record(known) : null;
  }

  async updateStates(uuid: string, update: InstanceStatesUpdate, options: SaveOptions = {}): Promise<void> {
    const ctx = options.ctx ?? conductorAdminContext();
    const base = this.cache.get(uuid) ?? (await this.fetchOne('get_by_uuid', uuid, ctx));
    if (!base) throw new InstanceNotFound(uuid);
    // A copy per save: concurrent writers never send each other's changes.
    const obj = base.clone();
    obj.resetChanges();
    for (const [key, field] of Object.entries(FIELD_OF) as Array<[keyof InstanceStatesUpdate, string]>) {
      if (update[key] !== undefined) obj.set(field, update[key]);
    }
    if (obj.changes().length === 0) return;
    const kwargs: Record<string, unknown> = {};
    if (options.expectedTaskState !== undefined) kwargs['expected_task_state'] = options.expectedTaskState;
    try {
      await this.conductor.objectAction(ctx, obj, 'save', [], kwargs);
    } catch (err) {
      if (isConductorError(err, 'InstanceNotFound')) this.cache.delete(uuid);
      throw err;
    }
    this.keep(obj);
  }

  private keep(obj: RemoteObject): RemoteObject {
    const uuid = str(obj.get('uuid'));
    if (uuid) {
      if (this.cache.size >= CACHE_LIMIT && !this.cache.has(uuid)) this.cache.clear();
      this.cache.set(uuid, obj);
    }
    return obj;
  }

  private record(obj: RemoteObject): InstanceRecord {
    const id = typeof obj.get('id') === 'number' ? (obj.get('id') as number) : null;
    const power = obj.get('power_state');
    return {
      uuid: str(obj.get('uuid')) ?? '',
      id,
      name: id === null ? '' : this.nameTemplate.format(id),
      host: str(obj.get('host')),
      vmState: str(obj.get('vm_state')),
      taskState: str(obj.get('task_state')),
      powerState: typeof power === 'number' ? power : null,
      projectId: str(obj.get('project_id')),
      userId: str(obj.get('user_id')),
    };
  }

  /** A class action that answers one Instance, or null when Nova has none (InstanceNotFound). */
  private async fetchOne(method: 'get_by_uuid' | 'get_by_id', key: string | number, ctx: RequestContext): Promise<RemoteObject | null> {
    try {
      const reply = await this.conductor.classAction(ctx, 'Instance', method, [key], { expected_attrs: EXPECTED_ATTRS, ...(method === 'get_by_uuid' ? { use_slave: false } : {}) });
      return this.keep(RemoteObject.fromPrimitive(reply, 'Instance'));
    } catch (err) {
      if (isConductorError(err, 'InstanceNotFound')) return null;
      throw err;
    }
  }
}

/** InstanceFault.create. */
export class ConductorFaultStore implements FaultStore {
  constructor(private readonly conductor: ConductorClient) {}

  async record(fault: Parameters<FaultStore['record']>[0], ctx?: RequestContext): Promise<void> {
    const obj = RemoteObject.create('InstanceFault', objectVersion('InstanceFault'), {
      instance_uuid: fault.instanceUuid,
      code: fault.code,
      message: fault.message,
      details: fault.details,
      host: fault.host,
    });
    await this.conductor.objectAction(ctx ?? conductorAdminContext(), obj, 'create');
  }
}

/**
 * InstanceActionEvent.event_start / event_finish_with_failure and InstanceAction.action_start. No
 * saveAndFinishEvent: nova-compute saves, then finishes, and so does the recorder here.
 */
export class ConductorActionStore implements ActionStore {
  constructor(private readonly conductor: ConductorClient) {}

  async eventStart(ctx: RequestContext, e: Parameters<ActionStore['eventStart']>[1]): Promise<ActionEventHandle> {
    await this.conductor.classAction(ctx, 'InstanceActionEvent', 'event_start', [e.instanceUuid, e.event], { want_result: false, host: e.host });
    return { instanceUuid: e.instanceUuid, event: e.event };
  }

  async eventFinish(ctx: RequestContext, handle: ActionEventHandle, o: Parameters<ActionStore['eventFinish']>[2]): Promise<void> {
    const failed = o.result === 'Error';
    await this.conductor.classAction(ctx, 'InstanceActionEvent', 'event_finish_with_failure', [handle.instanceUuid, handle.event], {
      exc_val: failed ? o.details : null,
      // The conductor records Error exactly when a traceback is given.
      exc_tb: failed ? o.traceback || 'Error' : null,
      want_result: false,
    });
  }

  async actionStart(ctx: RequestContext, a: { instanceUuid: string; action: string }): Promise<void> {
    await this.conductor.classAction(ctx, 'InstanceAction', 'action_start', [a.instanceUuid, a.action], { want_result: false });
  }
}

/** ConsoleAuthToken.authorize: Nova's own token table, which nova-novncproxy reads. */
export class ConductorConsoleTokenStore implements ConsoleTokenStore {
  constructor(private readonly conductor: ConductorClient) {}

  async authorize(t: Parameters<ConsoleTokenStore['authorize']>[0], ctx?: RequestContext): Promise<string> {
    const obj = RemoteObject.create('ConsoleAuthToken', objectVersion('ConsoleAuthToken'), {
      console_type: t.consoleType,
      host: t.host,
      port: t.port,
      internal_access_path: t.internalAccessPath,
      instance_uuid: t.instanceUuid,
      access_url_base: t.accessUrlBase,
    });
    const token = await this.conductor.objectAction(ctx ?? conductorAdminContext(), obj, 'authorize', [t.ttlSeconds]);
    if (typeof token !== 'string' || token.length === 0) throw new Error('the conductor authorised a console but returned no token');
    return token;
  }

  /** nova-compute's periodic _cleanup_expired_console_auth_tokens: the conductor deletes them in Nova's database. */
  async cleanExpired(): Promise<null> {
    await this.conductor.classAction(conductorAdminContext(), 'ConsoleAuthToken', 'clean_expired_console_auths', []);
    return null;
  }
}

export function conductorStores(opts: ConductorStoresOptions): ConductorStores {
  const { conductor } = opts;
  return {
    instances: new ConductorInstanceStore(conductor, opts.nameTemplate, opts.logger.child({ component: 'conductor-stores' })),
    faults: new ConductorFaultStore(conductor),
    actions: new ConductorActionStore(conductor),
    tokens: new ConductorConsoleTokenStore(conductor),
    diagnostics: opts.local.diagnostics,
    audit: opts.local.audit,
  };
}
