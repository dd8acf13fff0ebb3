// novamon's own RPC namespace (`novamon`, version 1.0) on the compute topic: methods Nova's rpcapi does
// not have, kept out of Nova's namespace so a Nova caller can never reach them by accident. A caller
// sets `namespace: novamon` in the target, as oslo.messaging does for any namespaced endpoint.

import type { ComputeForensics } from '../../compute/forensics.js';
import type { ComputeManager } from '../../compute/manager.js';
import type { RequestContext } from '../../context.js';
import { z } from 'zod';
import { Invalid } from '../../exception.js';
import type { RpcEndpoint } from '../dispatcher.js';
import { arg, unexpectedArgument, UnexpectedKeywordArgument } from './compute.js';
import { parseInstanceArg } from '../objects/instance.js';
import { ObjectFormatError } from '../objects/primitive.js';

export const NOVAMON_RPC_NAMESPACE = 'novamon';
export const NOVAMON_RPC_VERSION = '1.0';

/** Each method's keyword arguments; any other is answered with oslo's TypeError, as in Nova's namespace. */
const METHOD_PARAMS: Readonly<Record<string, readonly string[]>> = {
  get_screenshot: ['instance'],
  list_instances: ['all_hosts'],
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

  constructor(manager: ComputeManager, forensics: ComputeForensics) {
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
