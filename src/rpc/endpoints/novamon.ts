// novamon's own RPC namespace (`novamon`, version 1.0) on the compute topic: methods Nova's rpcapi does
// not have, kept out of Nova's namespace so a Nova caller can never reach them by accident. A caller
// sets `namespace: novamon` in the target, as oslo.messaging does for any namespaced endpoint.

import type { ComputeForensics } from '../../compute/forensics.js';
import type { ComputeManager } from '../../compute/manager.js';
import type { RequestContext } from '../../context.js';
import { z } from 'zod';
import { Invalid, PolicyNotAuthorized } from '../../exception.js';
import type { RpcEndpoint } from '../dispatcher.js';
import { arg, unexpectedArgument, UnexpectedKeywordArgument } from './compute.js';
import { parseInstanceArg } from '../objects/instance.js';
import { ObjectFormatError } from '../objects/primitive.js';

export const NOVAMON_RPC_NAMESPACE = 'novamon';
/** 1.1: instance_actions, instance_faults and db_version, for novamon-manage beside the embedded database. */
export const NOVAMON_RPC_VERSION = '1.1';

/**
 * What novamon-manage reads from novamon's own database, answered by the service that holds the embedded
 * one (only one process can open it). Absent when instances are kept elsewhere (Nova's conductor).
 */
export interface ManageRecords {
  instanceActions(instanceUuid: string): Promise<unknown[]>;
  instanceFaults(instanceUuid: string): Promise<unknown[]>;
  schemaVersion(): Promise<unknown>;
}

/** Each method's keyword arguments; any other is answered with oslo's TypeError, as in Nova's namespace. */
const METHOD_PARAMS: Readonly<Record<string, readonly string[]>> = {
  get_screenshot: ['instance'],
  list_instances: ['all_hosts'],
  instance_actions: ['instance'],
  instance_faults: ['instance'],
  db_version: [],
};

type Handler = (ctx: RequestContext, args: Record<string, unknown>) => Promise<unknown>;

/** What get_screenshot returns on the wire: the PNG in base64 beside its size. */
export interface ScreenshotReply {
  mime_type: 'image/png';
  width: number;
  height: number;
  data: string;
}

export class NovamonEndpoint implements RpcEndpoint {
  readonly namespace = NOVAMON_RPC_NAMESPACE;
  readonly version = NOVAMON_RPC_VERSION;
  private readonly handlers: Record<string, Handler>;

  constructor(manager: ComputeManager, forensics: ComputeForensics, records?: ManageRecords) {
    const instanceOf = async (args: Record<string, unknown>) => {
      try {
        return await manager.resolve(parseInstanceArg(args['instance']));
      } catch (err) {
        if (err instanceof ObjectFormatError) throw new Invalid(`Invalid argument instance: ${err.message}`);
        throw err;
      }
    };
    this.handlers = {
      get_screenshot: async (ctx, a): Promise<ScreenshotReply> => {
        const shot = await forensics.screenshot(ctx, await instanceOf(a));
        return { mime_type: 'image/png', width: shot.width, height: shot.height, data: shot.png.toString('base64') };
      },
      // novamon-manage's `instance list` / `show` while this service holds the embedded database.
      list_instances: async (ctx, a) => manager.listInstances(ctx, { allHosts: arg(a, 'all_hosts', z.boolean().optional().default(false)) }),
    };
    if (records) Object.assign(this.handlers, recordHandlers(records, instanceOf));
  }

  hasMethod(method: string): boolean {
    return Object.hasOwn(this.handlers, method);
  }

  handle(method: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> | undefined {
    const handler = this.hasMethod(method) ? this.handlers[method] : undefined;
    if (!handler) return undefined;
    const unexpected = unexpectedArgument(method, args, METHOD_PARAMS);
    if (unexpected !== null) return Promise.reject(new UnexpectedKeywordArgument(method, unexpected));
    return handler(ctx, args);
  }
}

/** instance_actions, instance_faults and db_version: admin only, like every novamon-manage read. */
function recordHandlers(records: ManageRecords, instanceOf: (args: Record<string, unknown>) => Promise<{ uuid: string }>): Record<string, Handler> {
  const adminOnly =
    (method: string, read: (args: Record<string, unknown>) => Promise<unknown>): Handler =>
    async (ctx, args) => {
      if (!ctx.isAdmin) throw new PolicyNotAuthorized(`novamon:${method}`);
      return read(args);
    };
  return {
    instance_actions: adminOnly('instance_actions', async (a) => records.instanceActions((await instanceOf(a)).uuid)),
    instance_faults: adminOnly('instance_faults', async (a) => records.instanceFaults((await instanceOf(a)).uuid)),
    db_version: adminOnly('db_version', () => records.schemaVersion()),
  };
}
