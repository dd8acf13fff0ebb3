// The request context travels as top-level `_context_<key>` entries of every call/cast (oslo.context's to_dict).
// We read the few keys novamon uses into typed fields and keep the rest verbatim in `raw`, so a context can be
// passed on (e.g. by the API to a compute host) without losing what Nova put in it.

import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../context.js';

export type { RequestContext } from '../context.js';

export const CONTEXT_PREFIX = '_context_';

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

export function contextFromMessage(msg: Record<string, unknown>): RequestContext {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(msg)) {
    if (key.startsWith(CONTEXT_PREFIX) && key.length > CONTEXT_PREFIX.length) raw[key.slice(CONTEXT_PREFIX.length)] = msg[key];
  }
  const roles = Array.isArray(raw['roles']) ? raw['roles'].filter((r): r is string => typeof r === 'string') : [];
  return {
    // oslo.context also sends the older names `user` / `tenant` / `project`; prefer the explicit ones.
    userId: str(raw['user_id']) ?? str(raw['user']),
    projectId: str(raw['project_id']) ?? str(raw['tenant']) ?? str(raw['project']),
    isAdmin: raw['is_admin'] === true,
    roles,
    requestId: str(raw['request_id']),
    globalRequestId: str(raw['global_request_id']),
    raw,
  };
}

/** Fresh request id in oslo.context's format. */
export function newRequestId(): string {
  return `req-${randomUUID()}`;
}

/**
 * The `_context_*` entries for an outgoing message: the typed fields first, in the order Nova's own messages
 * carry them (a field left undefined falls back to `raw`), then every other `raw` key passed through. A
 * context without a request id gets a fresh one, as oslo.context does.
 */
export function contextToMessage(ctx: Partial<RequestContext>): Record<string, unknown> {
  const raw = ctx.raw ?? {};
  const pick = (v: unknown, key: string, dflt: unknown): unknown => (v !== undefined ? v : raw[key] !== undefined ? raw[key] : dflt);
  const typed: Record<string, unknown> = {
    user_id: pick(ctx.userId, 'user_id', null),
    project_id: pick(ctx.projectId, 'project_id', null),
    is_admin: pick(ctx.isAdmin, 'is_admin', false),
    request_id: pick(ctx.requestId ?? undefined, 'request_id', null) ?? newRequestId(),
    roles: pick(ctx.roles, 'roles', []),
  };
  const globalRequestId = pick(ctx.globalRequestId, 'global_request_id', undefined);
  if (globalRequestId !== undefined) typed['global_request_id'] = globalRequestId;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(typed)) out[CONTEXT_PREFIX + key] = typed[key];
  for (const key of Object.keys(raw)) {
    if (!(key in typed)) out[CONTEXT_PREFIX + key] = raw[key];
  }
  return out;
}
