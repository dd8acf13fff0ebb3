// What the server routes share: Nova's reading of request bodies (raw JSON, then the schema) and of query
// strings (last value wins, strict booleans, date-times, limit/marker paging).

import type { FastifyRequest } from 'fastify';
import { baseUrl, contextOf, versionOf } from './http.js';
import { type ApiFault, badRequest } from './faults.js';
import { validateBody, type Schema } from './validation.js';
import type { ViewContext } from './views.js';

export type IdParams = { Params: { id: string } };
export type Query = Record<string, string | string[] | undefined>;

export function viewContext(req: FastifyRequest): ViewContext {
  return { version: versionOf(req), baseUrl: baseUrl(req), ctx: contextOf(req) };
}

/** The raw body as Nova's JSON deserializer reads it; an empty body is None. */
export function decodeBody(req: FastifyRequest): { ok: true; value: unknown } | { ok: false } {
  const raw = req.body;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : '';
  if (text.length === 0) return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

export function bodyOrThrow(req: FastifyRequest, schema: Schema): Record<string, unknown> {
  const decoded = decodeBody(req);
  if (!decoded.ok) throw badRequest('Malformed request body');
  const message = validateBody(schema, decoded.value);
  if (message !== null) throw badRequest(message);
  return decoded.value as Record<string, unknown>;
}

export function lastValue(q: Query, key: string): string | undefined {
  const v = q[key];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** Nova's is_all_tenants: present and empty = yes; otherwise a strict boolean string. */
export function isAllTenants(q: Query): boolean {
  if (!Object.hasOwn(q, 'all_tenants')) return false;
  const v = lastValue(q, 'all_tenants') ?? '';
  if (v === '') return true;
  const lowered = v.trim().toLowerCase();
  if (TRUE_STRINGS.includes(lowered)) return true;
  if (FALSE_STRINGS.includes(lowered)) return false;
  const acceptable = [...FALSE_STRINGS, ...TRUE_STRINGS].sort().map((s) => `'${s}'`).join(', ');
  throw badRequest(`Invalid input received: Unrecognized value '${v}', acceptable values are: ${acceptable}`);
}

export function parseTime(q: Query, key: string): Date | undefined {
  const v = lastValue(q, key);
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw badRequest(`Invalid input for query parameters ${key}. Value: ${v}. '${v}' is not a 'date-time'`);
  return new Date(t);
}

export function parseLimit(q: Query): number | undefined {
  const v = lastValue(q, 'limit');
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw badRequest('limit param must be an integer');
  const n = Number(v);
  if (n < 0) throw badRequest('limit param must be positive');
  return n;
}

/** limit/marker paging over an already sorted list; marker is an id the page must start after. */
export function paginate<T>(items: T[], q: Query, idOf: (t: T) => string, markerMissing: (m: string) => ApiFault): { page: T[]; limit: number | undefined } {
  const limit = parseLimit(q);
  const marker = lastValue(q, 'marker');
  let start = 0;
  if (marker !== undefined) {
    const i = items.findIndex((t) => idOf(t) === marker);
    if (i < 0) throw markerMissing(marker);
    start = i + 1;
  }
  const page = items.slice(start, limit === undefined ? undefined : start + limit);
  return { page, limit };
}
