// The request context every operation runs under (Nova's RequestContext): who asked, for which
// project, with which request id. rpc/ builds it from the `_context_*` keys, the REST API from the token.

export interface RequestContext {
  userId: string | null;
  projectId: string | null;
  isAdmin: boolean;
  roles: string[];
  requestId: string | null;
  globalRequestId: string | null;
  /** Every context key as received, values untouched and untrusted (Nova sends many more than we use). */
  raw: Record<string, unknown>;
}

/** A context for work novamon starts itself (discovery, power-state sync): admin, no user. */
export function adminContext(requestId: string | null = null): RequestContext {
  return { userId: null, projectId: null, isAdmin: true, roles: ['admin'], requestId, globalRequestId: null, raw: {} };
}
