// Small helpers shared by novamon-api's routes: the per-request state the pipeline fills in, and how
// answers are written (Nova's JSON, its fault bodies).

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from './compute-api.js';
import type { ApiFault } from './faults.js';
import type { ApiVersion } from './microversion.js';

export type Zone = 'root' | 'version-doc' | 'api' | 'ops' | 'other';

/** Per-request state the pipeline fills in. */
export interface NovaRequestState {
  zone: Zone;
  requestId: string;
  globalRequestId: string | null;
  /** Negotiated (or, for a 406, requested) version; null = no version headers on the answer. */
  version: ApiVersion | null;
  ctx: ApiContext | null;
  started: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    nova: NovaRequestState;
  }
}

export function baseUrl(req: FastifyRequest): string {
  return `${req.protocol}://${req.headers.host ?? `${req.hostname}`}`;
}

/** Sends Nova's fault body. */
export function sendFault(reply: FastifyReply, fault: ApiFault): FastifyReply {
  for (const [k, v] of Object.entries(fault.headers)) reply.header(k, v);
  return reply.code(fault.status).type('application/json; charset=UTF-8').send(JSON.stringify(fault.body()));
}

export function sendJson(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json').send(JSON.stringify(body));
}

/** The API context of an authenticated request (set by the pipeline before any /v2.1/ handler runs). */
export function contextOf(req: FastifyRequest): ApiContext {
  const ctx = req.nova.ctx;
  if (ctx === null) throw new Error('request reached a handler without a context');
  return ctx;
}

export function versionOf(req: FastifyRequest): ApiVersion {
  const v = req.nova.version;
  if (v === null) throw new Error('request reached a handler without a version');
  return v;
}

