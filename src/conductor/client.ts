// nova-conductor as a compute host reaches it: the `conductor` topic (version 3.0, no namespace) with
// object_class_action_versions for remotable class methods and object_action for remotable instance
// methods, the reply merged back as oslo.versionedobjects merges it. Nova's failures come back as
// ConductorRemoteError carrying Nova's class, so callers tell UnexpectedTaskStateError from the rest.

import type { RequestContext } from '../context.js';
import { NovaException, type ExceptionKwargs } from '../exception.js';
import type { Logger } from '../logging.js';
import type { RpcClient } from '../rpc/client.js';
import { RemoteError } from '../rpc/failure.js';
import { newRequestId } from '../rpc/context.js';
import { ObjectFormatError } from '../rpc/objects/primitive.js';
import { type RemoteObject } from './remote-object.js';

export const CONDUCTOR_TOPIC = 'conductor';
export const CONDUCTOR_RPC_VERSION = '3.0';

/**
 * obj_tree_get_versions of Nova Zed (python3-nova 26): the manifest each class action sends, so the
 * conductor picks these versions and backports nothing. test/functional checks them against Nova.
 */
const INSTANCE_TREE: Record<string, string> = {
  ComputeNode: '1.19', DeviceBus: '1.0', DeviceMetadata: '1.0', EC2Ids: '1.0', Flavor: '1.2', HVSpec: '1.2', Instance: '2.7',
  InstanceDeviceMetadata: '1.0', InstanceFault: '1.2', InstanceInfoCache: '1.5', InstanceNUMACell: '1.6', InstanceNUMATopology: '1.3',
  InstancePCIRequest: '1.4', InstancePCIRequests: '1.1', KeyPair: '1.4', KeyPairList: '1.3', MigrationContext: '1.2', PciDevice: '1.7',
  PciDeviceList: '1.3', PciDevicePool: '1.1', PciDevicePoolList: '1.1', Resource: '1.0', ResourceList: '1.0', ResourceMetadata: '1.0',
  SecurityGroup: '1.2', SecurityGroupList: '1.1', Service: '1.22', ServiceList: '1.19', Tag: '1.1', TagList: '1.1', TrustedCerts: '1.0',
  VirtCPUFeature: '1.0', VirtCPUModel: '1.0', VirtCPUTopology: '1.0',
};
const COMPUTE_NODE_TREE: Record<string, string> = { ComputeNode: '1.19', HVSpec: '1.2', PciDevicePool: '1.1', PciDevicePoolList: '1.1' };

export const OBJECT_MANIFESTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  Instance: INSTANCE_TREE,
  InstanceList: { ...INSTANCE_TREE, InstanceList: '2.6' },
  Service: { ...COMPUTE_NODE_TREE, Service: '1.22' },
  ComputeNode: COMPUTE_NODE_TREE,
  InstanceActionEvent: { InstanceActionEvent: '1.4' },
  InstanceAction: { InstanceAction: '1.2' },
  InstanceFault: { InstanceFault: '1.2' },
  ConsoleAuthToken: { ConsoleAuthToken: '1.1' },
};

export function objectVersion(name: string): string {
  const v = OBJECT_MANIFESTS[name]?.[name];
  if (!v) throw new Error(`no Zed version known for ${name}`);
  return v;
}

/** A failure nova-conductor returned: Nova's own exception, passed on under its own class and kwargs. */
export class ConductorRemoteError extends NovaException {
  override readonly module: string;
  override readonly code: number;
  constructor(readonly remote: RemoteError) {
    super(remote.value || remote.excType, scalarKwargs(remote.kwargs));
    this.module = remote.module || 'nova.exception';
    const code = remote.kwargs['code'];
    this.code = typeof code === 'number' && Number.isInteger(code) ? code : 500;
  }
  override get className(): string {
    return this.remote.excType;
  }
  /** True when Nova raised nova.exception.<className>. */
  is(className: string): boolean {
    return this.remote.excType === className;
  }
}

function scalarKwargs(kwargs: Record<string, unknown>): ExceptionKwargs {
  const out: ExceptionKwargs = {};
  for (const [k, v] of Object.entries(kwargs)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v as string | number | boolean | null;
    else out[k] = JSON.stringify(v).slice(0, 500);
  }
  return out;
}

export function isConductorError(err: unknown, className: string): boolean {
  return err instanceof ConductorRemoteError && err.is(className);
}

/** The context a compute host uses for its own work (Nova's get_admin_context()). */
export function conductorAdminContext(requestId: string = newRequestId()): RequestContext {
  return {
    userId: null,
    projectId: null,
    isAdmin: true,
    roles: [],
    requestId,
    globalRequestId: null,
    raw: { read_deleted: 'no', timestamp: pyTimestamp(new Date()) },
  };
}

/** RequestContext.timestamp as Nova serialises it (`%Y-%m-%dT%H:%M:%S.%f`, UTC, no zone). */
export function pyTimestamp(d: Date): string {
  return `${d.toISOString().slice(0, 19)}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}`;
}

/** The methods of the RPC client the conductor client needs (src/rpc/client.ts's RpcClient). */
export type ConductorTransport = Pick<RpcClient, 'call'>;

export class ConductorClient {
  private readonly log: Logger;

  constructor(
    private readonly rpc: ConductorTransport,
    logger: Logger,
    private readonly timeoutMs?: number,
  ) {
    this.log = logger.child({ component: 'conductor-client' });
  }

  /** A @remotable_classmethod: `Class.method(context, *args, **kwargs)` on the conductor. */
  async classAction(ctx: RequestContext, objname: string, objmethod: string, args: unknown[], kwargs: Record<string, unknown> = {}): Promise<unknown> {
    const manifest = OBJECT_MANIFESTS[objname];
    if (!manifest) throw new Error(`no Zed manifest known for ${objname}`);
    return this.call(ctx, 'object_class_action_versions', { objname, objmethod, object_versions: manifest, args, kwargs });
  }

  /**
   * A @remotable method on `obj`: the conductor runs it on a copy and answers [updates, result]; the
   * updates are merged into `obj` (its change list becomes the conductor's obj_what_changed).
   */
  async objectAction(ctx: RequestContext, obj: RemoteObject, objmethod: string, args: unknown[] = [], kwargs: Record<string, unknown> = {}): Promise<unknown> {
    const reply = await this.call(ctx, 'object_action', { objinst: obj.toPrimitive(), objmethod, args, kwargs });
    if (!Array.isArray(reply) || reply.length !== 2) throw new ObjectFormatError(`${obj.name}.${objmethod}: the conductor's reply is not [updates, result]`);
    obj.mergeUpdates(reply[0]);
    return reply[1];
  }

  /** The baseapi ping nova-compute sends until a conductor answers (nova/conductor/api.py). */
  async ping(timeoutMs: number): Promise<void> {
    const reply = await this.rpc.call(
      { topic: CONDUCTOR_TOPIC, version: '1.0', namespace: 'baseapi' },
      conductorAdminContext(),
      'ping',
      { arg: '1.21 GigaWatts' },
      { timeoutMs },
    );
    const service = (reply as { service?: unknown } | null)?.service;
    if (service !== 'conductor') this.log.warn({ reply }, 'unexpected ping reply from the conductor topic');
  }

  private async call(ctx: RequestContext, method: string, args: Record<string, unknown>): Promise<unknown> {
    try {
      return await this.rpc.call(
        { topic: CONDUCTOR_TOPIC, version: CONDUCTOR_RPC_VERSION },
        ctx,
        method,
        args,
        this.timeoutMs === undefined ? undefined : { timeoutMs: this.timeoutMs },
      );
    } catch (err) {
      if (err instanceof RemoteError) throw new ConductorRemoteError(err);
      throw err;
    }
  }
}
