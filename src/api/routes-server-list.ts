// GET /servers and /servers/detail: Nova's filters (name, status, host and project for admins,
// changes-since/before), the tag and lock filters novamon's servers never match, and limit/marker paging
// with a `next` link.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext, ComputeApi, ServerListFilter } from './compute-api.js';
import { contextOf, sendJson } from './http.js';
import { isSupported } from './microversion.js';
import { authorize, can } from './policy.js';
import { isAllTenants, lastValue, parseLimit, parseTime, viewContext, type Query } from './server-query.js';
import { serverDetail, serverSummary, vmStatesForStatus, type ViewContext } from './views.js';

/** The list filter the query asks for, within what the caller's policy allows. */
function listFilter(ctx: ApiContext, q: Query, vc: ViewContext, detail: boolean): ServerListFilter {
  authorize(ctx, detail ? 'os_compute_api:servers:detail' : 'os_compute_api:servers:index');
  const allTenants = isAllTenants(q);
  if (allTenants) authorize(ctx, detail ? 'os_compute_api:servers:detail:get_all_tenants' : 'os_compute_api:servers:index:get_all_tenants');
  const filter: ServerListFilter = { allTenants };
  const name = lastValue(q, 'name');
  if (name !== undefined) filter.name = name;
  const status = lastValue(q, 'status');
  if (status !== undefined) filter.vmStates = vmStatesForStatus(status);
  if (can(ctx, 'os_compute_api:servers:allow_all_filters')) {
    const host = lastValue(q, 'host');
    if (host !== undefined) filter.host = host;
    const project = lastValue(q, 'project_id') ?? lastValue(q, 'tenant_id');
    if (project !== undefined && allTenants) filter.projectId = project;
  }
  const since = parseTime(q, 'changes-since');
  if (since) filter.changesSince = since;
  if (isSupported(vc.version, '2.66')) {
    const before = parseTime(q, 'changes-before');
    if (before) filter.changesBefore = before;
  }
  return filter;
}

/** novamon servers carry no tags and are never locked: those filters select nothing. */
function selectsNothing(q: Query, vc: ViewContext): boolean {
  return (
    (isSupported(vc.version, '2.26') && (q['tags'] !== undefined || q['tags-any'] !== undefined)) ||
    (isSupported(vc.version, '2.73') && ['1', 't', 'true', 'on', 'y', 'yes'].includes((lastValue(q, 'locked') ?? '').toLowerCase()))
  );
}

function listHandler(compute: ComputeApi, detail: boolean) {
  return async (req: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) => {
    const ctx = contextOf(req);
    const q = req.query;
    const vc = viewContext(req);
    const filter = listFilter(ctx, q, vc, detail);
    const limit = parseLimit(q);
    if (limit !== undefined) filter.limit = limit;
    const marker = lastValue(q, 'marker');
    if (marker !== undefined) filter.marker = marker;
    // The database filters, sorts and pages (a marker outside the filtered rows: 400 marker not found).
    const page = selectsNothing(q, vc) ? [] : await compute.list(ctx, filter);
    const faults = new Map<string, Awaited<ReturnType<ComputeApi['latestFault']>>>();
    if (detail) {
      for (const r of page) if (r.vmState === 'error') faults.set(r.uuid, await compute.latestFault(r.uuid));
    }
    const body: Record<string, unknown> = {
      servers: page.map((r) => (detail ? serverDetail(r, vc, { fault: faults.get(r.uuid) ?? null }) : serverSummary(r, vc))),
    };
    const last = page[page.length - 1];
    if (limit !== undefined && page.length === limit && last) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (k !== 'marker' && v !== undefined) params.set(k, Array.isArray(v) ? (v[v.length - 1] ?? '') : v);
      params.set('marker', last.uuid);
      body['servers_links'] = [{ rel: 'next', href: `${vc.baseUrl}/v2.1/servers${detail ? '/detail' : ''}?${params.toString()}` }];
    }
    return sendJson(reply, 200, body);
  };
}

export function registerServerListRoutes(app: FastifyInstance, compute: ComputeApi): void {
  app.get('/v2.1/servers', listHandler(compute, false));
  app.get('/v2.1/servers/detail', listHandler(compute, true));
}
