// The server routes: list/detail/show, POST /servers/{id}/action (routes-server-actions.ts),
// remote-consoles, diagnostics and instance actions, in the order Nova's controllers work: body schema,
// scoped lookup (404), policy (403), then compute.

import type { FastifyInstance } from 'fastify';
import type { Logger } from '../logging.js';
import type { ComputeApi } from './compute-api.js';
import { badRequest, notFound } from './faults.js';
import { baseUrl, contextOf, sendFault, sendJson, versionOf } from './http.js';
import { isSupported } from './microversion.js';
import { authorize } from './policy.js';
import { registerServerActionRoute } from './routes-server-actions.js';
import { registerServerListRoutes } from './routes-server-list.js';
import { bodyOrThrow, paginate, parseTime, viewContext, type IdParams, type Query } from './server-query.js';
import { schemas } from './validation.js';
import { actionView, actionWithEventsView, diagnosticsView, serverDetail } from './views.js';


export interface ServerRouteOptions {
  compute: ComputeApi;
  monitorPassthrough: boolean;
  logger: Logger;
}

export function registerServerRoutes(app: FastifyInstance, o: ServerRouteOptions): void {
  registerServerListRoutes(app, o.compute);
  registerServerShowRoute(app, o.compute);
  registerServerActionRoute(app, o.compute, o.monitorPassthrough);
  registerConsoleAndDiagnosticsRoutes(app, o.compute);
  registerInstanceActionRoutes(app, o.compute);
}

function registerServerShowRoute(app: FastifyInstance, compute: ComputeApi): void {
  app.get<IdParams>('/v2.1/servers/:id', async (req, reply) => {
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, 'os_compute_api:servers:show', { projectId: row.projectId });
    const fault = row.vmState === 'error' ? await compute.latestFault(row.uuid) : null;
    return sendJson(reply, 200, { server: serverDetail(row, viewContext(req), { fault, showServerGroups: true }) });
  });
}

function registerConsoleAndDiagnosticsRoutes(app: FastifyInstance, compute: ComputeApi): void {
  // novamon's extension: the guest's screen as PNG (QEMU screendump through the compute host).
  app.get<IdParams>('/v2.1/servers/:id/novamon-screenshot', async (req, reply) => {
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, 'os_compute_api:os-server-screenshot', { projectId: row.projectId });
    const png = await compute.screenshot(ctx, row, req.params.id);
    return reply.code(200).type('image/png').header('Cache-Control', 'no-store').send(png);
  });

  app.post<IdParams>('/v2.1/servers/:id/remote-consoles', async (req, reply) => {
    const v = versionOf(req);
    if (!isSupported(v, '2.6')) return sendFault(reply, notFound());
    const body = bodyOrThrow(req, isSupported(v, '2.8') ? schemas.remoteConsoleV28 : schemas.remoteConsoleV26);
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, 'os_compute_api:os-remote-consoles', { projectId: row.projectId });
    const { protocol, type } = body['remote_console'] as { protocol: string; type: string };
    let url: string;
    if (protocol === 'vnc') url = await compute.getConsoleUrl(ctx, row, 'get_vnc_console', type, req.params.id);
    else if (protocol === 'serial') url = await compute.getConsoleUrl(ctx, row, 'get_serial_console', type, req.params.id);
    else throw badRequest(`Unavailable console type ${type}.`);
    return sendJson(reply, 200, { remote_console: { protocol, type, url } });
  });

  app.get<IdParams>('/v2.1/servers/:id/diagnostics', async (req, reply) => {
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, 'os_compute_api:os-server-diagnostics', { projectId: row.projectId });
    const standard = isSupported(versionOf(req), '2.48');
    const result = await compute.getDiagnostics(ctx, row, standard, req.params.id);
    return sendJson(reply, 200, standard ? diagnosticsView(result) : (result ?? {}));
  });
}

function registerInstanceActionRoutes(app: FastifyInstance, compute: ComputeApi): void {
  app.get<IdParams & { Querystring: Query }>('/v2.1/servers/:id/os-instance-actions', async (req, reply) => {
    const ctx = contextOf(req);
    const v = versionOf(req);
    const row = await compute.get(ctx, req.params.id, { includeDeleted: isSupported(v, '2.21') });
    authorize(ctx, 'os_compute_api:os-instance-actions:list', { projectId: row.projectId });
    let actions = await compute.listActions(row.uuid);
    if (!isSupported(v, '2.58')) return sendJson(reply, 200, { instanceActions: actions.map((a) => actionView(a, v)) });
    const q = req.query;
    const since = parseTime(q, 'changes-since');
    const before = isSupported(v, '2.66') ? parseTime(q, 'changes-before') : undefined;
    if (since && before && before < since) throw badRequest('The value of changes-since must be less than or equal to changes-before.');
    const updated = (a: (typeof actions)[number]) => (a.updatedAt ?? a.startTime).getTime();
    if (since) actions = actions.filter((a) => updated(a) >= since.getTime());
    if (before) actions = actions.filter((a) => updated(a) <= before.getTime());
    const { page, limit } = paginate(actions, q, (a) => a.requestId, (m) => badRequest(`Marker ${m} could not be found.`));
    const body: Record<string, unknown> = { instanceActions: page.map((a) => actionView(a, v)) };
    const last = page[page.length - 1];
    if (limit !== undefined && page.length === limit && last) {
      body['links'] = [{ rel: 'next', href: `${baseUrl(req)}/v2.1/servers/${req.params.id}/os-instance-actions?limit=${limit}&marker=${last.requestId}` }];
    }
    return sendJson(reply, 200, body);
  });

  app.get<{ Params: { id: string; requestId: string } }>('/v2.1/servers/:id/os-instance-actions/:requestId', async (req, reply) => {
    const ctx = contextOf(req);
    const v = versionOf(req);
    const row = await compute.get(ctx, req.params.id, { includeDeleted: isSupported(v, '2.21') });
    authorize(ctx, 'os_compute_api:os-instance-actions:show', { projectId: row.projectId });
    const action = await compute.getAction(row.uuid, req.params.requestId);
    if (!action) throw notFound(`Action ${req.params.requestId} not found`);
    return sendJson(reply, 200, { instanceAction: actionWithEventsView(action, viewContext(req), row.projectId) });
  });
}
