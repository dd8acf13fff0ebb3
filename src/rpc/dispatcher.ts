// Routes a decoded call/cast to the endpoint that serves its method at the requested version, as oslo's
// RPCDispatcher does: same namespace, same major, minor not above the served one. Knows no Nova method;
// the failures it raises carry oslo's own module and wording so Python callers see what they expect.

import { type RequestContext } from './context.js';
import { WireException } from './failure.js';

export interface RpcEndpoint {
  /** Served API version, e.g. '6.1'. */
  readonly version: string;
  readonly namespace?: string | null;
  /** wire method name -> handler; args are the raw (untrusted) JSON args object. undefined => method not served. */
  handle(method: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> | undefined;
  hasMethod(method: string): boolean;
  /** Messages with the same key run one after another in arrival order; null = no ordering. */
  orderingKey?(method: string, args: Record<string, unknown>): string | null;
}

export const DISPATCHER_MODULE = 'oslo_messaging.rpc.dispatcher';

export class NoSuchMethod extends WireException {
  constructor(readonly method: string) {
    super(DISPATCHER_MODULE, 'NoSuchMethod', `Endpoint does not support RPC method ${method}`);
  }
}

export class UnsupportedVersion extends WireException {
  constructor(
    readonly version: string,
    readonly method?: string,
  ) {
    super(DISPATCHER_MODULE, 'UnsupportedVersion', `Endpoint does not support RPC version ${version}${method ? `. Attempted method: ${method}` : ''}`);
  }
}

type Version = [number, number, number];

/** 'M.m' or 'M.m.r' -> numbers; null for anything else. */
export function parseVersion(v: string): Version | null {
  const m = /^(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?$/.exec(v);
  if (!m) return null;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

/** oslo's version_is_compatible: a server at `served` accepts `requested` with the same major and no newer minor. */
export function versionIsCompatible(served: string, requested: string): boolean {
  const s = parseVersion(served);
  const r = parseVersion(requested);
  if (!s || !r) return false;
  if (s[0] !== r[0]) return false;
  if (r[1] !== s[1]) return r[1] < s[1];
  return r[2] <= s[2];
}

export class RpcDispatcher {
  private readonly endpoints: readonly RpcEndpoint[];

  constructor(endpoints: RpcEndpoint[]) {
    for (const e of endpoints) {
      if (!parseVersion(e.version)) throw new Error(`endpoint version ${JSON.stringify(e.version)} is not M.m`);
    }
    this.endpoints = [...endpoints];
  }

  /**
   * The endpoint that serves `method` at `version` in `namespace`. Throws NoSuchMethod when some endpoint
   * accepts the version but none has the method, UnsupportedVersion when none accepts the version.
   */
  select(method: string, version: string, namespace: string | null): RpcEndpoint {
    let compatible = false;
    for (const e of this.endpoints) {
      if ((e.namespace ?? null) !== namespace) continue;
      if (!versionIsCompatible(e.version, version)) continue;
      if (e.hasMethod(method)) return e;
      compatible = true;
    }
    if (compatible) throw new NoSuchMethod(method);
    throw new UnsupportedVersion(version, method);
  }

  /** Run the handler; a synchronous throw or an endpoint that declines the method becomes a rejected promise. */
  invoke(endpoint: RpcEndpoint, method: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> {
    try {
      const p = endpoint.handle(method, ctx, args);
      return p === undefined ? Promise.reject(new NoSuchMethod(method)) : p;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** select + invoke, for callers that need no ordering. */
  dispatch(method: string, version: string, namespace: string | null, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> {
    let endpoint: RpcEndpoint;
    try {
      endpoint = this.select(method, version, namespace);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.invoke(endpoint, method, ctx, args);
  }

  /** The endpoint's ordering key; a throwing key function means no ordering rather than a lost message. */
  orderingKey(endpoint: RpcEndpoint, method: string, args: Record<string, unknown>): string | null {
    if (!endpoint.orderingKey) return null;
    try {
      const k = endpoint.orderingKey(method, args);
      return typeof k === 'string' ? k : null;
    } catch {
      return null;
    }
  }
}
