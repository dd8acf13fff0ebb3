// The server routes: list/detail/show, POST /servers/{id}/action (power operations, console output,
// os-getVNCConsole, novamon's monitor passthrough), remote-consoles, diagnostics and instance actions,
// in the order Nova's controllers work: body schema, scoped lookup (404), policy (403), then compute.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../logging.js';
import { baseUrl, contextOf, sendFault, sendJson, versionOf } from './http.js';
import type { ComputeApi, ServerListFilter } from './compute-api.js';
import { ApiFault, badRequest, notFound, unexpectedApiError } from './faults.js';
import { isSupported } from './microversion.js';
import { authorize, can } from './policy.js';
import { schemas, validateBody, type Schema } from './validation.js';
import { actionView, actionWithEventsView, diagnosticsView, serverDetail, serverSummary, vmStatesForStatus, type ViewContext } from './views.js';

export interface ServerRouteOptions {
  compute: ComputeApi;
  monitorPassthrough: boolean;
  logger: Logger;
}

type IdParams = { Params: { id: string } };
type Query = Record<string, string | string[] | undefined>;

function viewContext(req: FastifyRequest): ViewContext {
  return { version: versionOf(req), baseUrl: baseUrl(req), ctx: contextOf(req) };
}

/** The raw body as Nova's JSON deserializer reads it; an empty body is None. */
function decodeBody(req: FastifyRequest): { ok: true; value: unknown } | { ok: false } {
  const raw = req.body;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : '';
  if (text.length === 0) return { ok: true, value: null };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

function bodyOrThrow(req: FastifyRequest, schema: Schema): Record<string, unknown> {
  const decoded = decodeBody(req);
  if (!decoded.ok) throw badRequest('Malformed request body');
  const message = validateBody(schema, decoded.value);
  if (message !== null) throw badRequest(message);
  return decoded.value as Record<string, unknown>;
}

function lastValue(q: Query, key: string): string | undefined {
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

function parseTime(q: Query, key: string): Date | undefined {
  const v = lastValue(q, key);
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) throw badRequest(`Invalid input for query parameters ${key}. Value: ${v}. '${v}' is not a 'date-time'`);
  return new Date(t);
}

function parseLimit(q: Query): number | undefined {
  const v = lastValue(q, 'limit');
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw badRequest('limit param must be an integer');
  const n = Number(v);
  if (n < 0) throw badRequest('limit param must be positive');
  return n;
}

/** limit/marker paging over an already sorted list; marker is an id the page must start after. */
function paginate<T>(items: T[], q: Query, idOf: (t: T) => string, markerMissing: (m: string) => ApiFault): { page: T[]; limit: number | undefined } {
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

export function registerServerRoutes(app: FastifyInstance, o: ServerRouteOptions): void {
  const compute = o.compute;

  const list = (detail: boolean) => async (req: FastifyRequest<{ Querystring: Query }>, reply: FastifyReply) => {
    const ctx = contextOf(req);
    const q = req.query;
    const vc = viewContext(req);
    authorize(ctx, detail ? 'os_compute_api:servers:detail' : 'os_compute_api:servers:index');
    const allTenants = isAllTenants(q);
    if (allTenants) authorize(ctx, detail ? 'os_compute_api:servers:detail:get_all_tenants' : 'os_compute_api:servers:index:get_all_tenants');
    const filter: ServerListFilter = { allTenants };
    const name = lastValue(q, 'name');
    if (name !== undefined) filter.name = name;
    const status = lastValue(q, 'status');
    if (status !== undefined) filter.vmStates = vmStatesForStatus(status);
    const admin = can(ctx, 'os_compute_api:servers:allow_all_filters');
    if (admin) {
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
    let rows = await compute.list(ctx, filter);
    // novamon servers carry no tags and are never locked: those filters select nothing or everything.
    if ((isSupported(vc.version, '2.26') && (q['tags'] !== undefined || q['tags-any'] !== undefined)) ||
      (isSupported(vc.version, '2.73') && ['1', 't', 'true', 'on', 'y', 'yes'].includes((lastValue(q, 'locked') ?? '').toLowerCase()))) {
      rows = [];
    }
    const { page, limit } = paginate(rows, q, (r) => r.uuid, (m) => badRequest(`marker [${m}] not found`));
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
  app.get('/v2.1/servers', list(false));
  app.get('/v2.1/servers/detail', list(true));

  app.get<IdParams>('/v2.1/servers/:id', async (req, reply) => {
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, 'os_compute_api:servers:show', { projectId: row.projectId });
    const fault = row.vmState === 'error' ? await compute.latestFault(row.uuid) : null;
    return sendJson(reply, 200, { server: serverDetail(row, viewContext(req), { fault, showServerGroups: true }) });
  });

  app.post<IdParams>('/v2.1/servers/:id/action', async (req, reply) => {
    const decoded = decodeBody(req);
    if (!decoded.ok) return sendFault(reply, badRequest('Malformed request body'));
    const body = decoded.value;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length !== 1) {
      return sendFault(reply, badRequest('Malformed request body'));
    }
    const action = Object.keys(body)[0] as string;
    const handler = actionHandlers[action];
    if (!handler || (action === 'novamon-monitorCommand' && !o.monitorPassthrough)) {
      return sendFault(reply, badRequest(`There is no such action: ${action}`));
    }
    return handler(req, reply, body as Record<string, unknown>);
  });

  type ActionHandler = (req: FastifyRequest<IdParams>, reply: FastifyReply, body: Record<string, unknown>) => Promise<FastifyReply>;
  const power = (op: 'stop' | 'start' | 'pause' | 'unpause', rule: Parameters<typeof authorize>[1]): ActionHandler => async (req, reply) => {
    const ctx = contextOf(req);
    const row = await compute.get(ctx, req.params.id);
    authorize(ctx, rule, { projectId: row.projectId });
    await compute.powerAction(ctx, row, op, { serverId: req.params.id });
    return reply.code(202).type('application/json').send('');
  };

  const actionHandlers: Record<string, ActionHandler> = {
    'os-stop': power('stop', 'os_compute_api:servers:stop'),
    'os-start': power('start', 'os_compute_api:servers:start'),
    pause: power('pause', 'os_compute_api:os-pause-server:pause'),
    unpause: power('unpause', 'os_compute_api:os-pause-server:unpause'),
    reboot: async (req, reply) => {
      const body = bodyOrThrow(req, schemas.reboot);
      const type = String((body['reboot'] as { type: string }).type).toUpperCase() as 'SOFT' | 'HARD';
      const ctx = contextOf(req);
      const row = await compute.get(ctx, req.params.id);
      authorize(ctx, 'os_compute_api:servers:reboot', { projectId: row.projectId });
      await compute.powerAction(ctx, row, 'reboot', { rebootType: type, serverId: req.params.id });
      return reply.code(202).type('application/json').send('');
    },
    'os-getConsoleOutput': async (req, reply) => {
      const body = bodyOrThrow(req, schemas.consoleOutput);
      const ctx = contextOf(req);
      const row = await compute.get(ctx, req.params.id);
      authorize(ctx, 'os_compute_api:os-console-output', { projectId: row.projectId });
      const length = (body['os-getConsoleOutput'] as { length?: unknown }).length;
      const output = await compute.getConsoleOutput(ctx, row, length, req.params.id);
      // Nova strips the control characters XML could not carry (and still does for JSON).
      return sendJson(reply, 200, { output: stripControl(output) });
    },
    'os-getVNCConsole': async (req, reply) => {
      // Replaced by remote-consoles in 2.6: Nova answers as if the action did not exist at this version.
      if (!isSupported(versionOf(req), '2.1', '2.5')) return sendFault(reply, notFound());
      const body = bodyOrThrow(req, schemas.vncConsole);
      const ctx = contextOf(req);
      authorize(ctx, 'os_compute_api:os-remote-consoles');
      const type = (body['os-getVNCConsole'] as { type: string }).type;
      const row = await compute.get(ctx, req.params.id);
      try {
        const url = await compute.getConsoleUrl(ctx, row, 'get_vnc_console', type, req.params.id);
        return sendJson(reply, 200, { console: { type, url } });
      } catch (err) {
        // This controller does not expect ConsoleTypeInvalid (Zed answers xvpvnc with a 500).
        if (err instanceof ApiFault && err.status === 400 && err.message.startsWith('Invalid console type')) {
          throw unexpectedApiError('nova.exception.ConsoleTypeInvalid');
        }
        throw err;
      }
    },
    trigger_crash_dump: async (req, reply) => {
      // Added in 2.17: before that Nova answers as if the action did not exist at this version.
      if (!isSupported(versionOf(req), '2.17')) return sendFault(reply, notFound());
      bodyOrThrow(req, schemas.triggerCrashDump);
      const ctx = contextOf(req);
      const row = await compute.get(ctx, req.params.id);
      authorize(ctx, 'os_compute_api:servers:trigger_crash_dump', { projectId: row.projectId });
      await compute.triggerCrashDump(ctx, row, req.params.id);
      return reply.code(202).type('application/json').send('');
    },
    'novamon-monitorCommand': async (req, reply) => {
      const body = bodyOrThrow(req, schemas.monitorCommand);
      const ctx = contextOf(req);
      const row = await compute.get(ctx, req.params.id);
      authorize(ctx, 'os_compute_api:os-server-monitor-command', { projectId: row.projectId });
      const cmd = body['novamon-monitorCommand'] as { command: string; hmp?: boolean };
      const result = await compute.monitorCommand(ctx, row, cmd.command, cmd.hmp === true, req.params.id);
      return sendJson(reply, 200, { return: result ?? null });
    },
  };

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

  app.get<IdParams & { Querystring: Query }>('/v2.1/servers/:id/os-instance-actions', async (req, reply) => {
    const ctx = contextOf(req);
    const v = versionOf(req);
    const row = await compute.get(ctx, req.params.id, { includeDeleted: isSupported(v, '2.21') });
    authorize(ctx, 'os_compute_api:os-instance-actions:list', { projectId: row.projectId });
    let actions = await o.compute.listActions(row.uuid);
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
    const action = await o.compute.getAction(row.uuid, req.params.requestId);
    if (!action) throw notFound(`Action ${req.params.requestId} not found`);
    return sendJson(reply, 200, { instanceAction: actionWithEventsView(action, viewContext(req), row.projectId) });
  });
}

/** Removes U+0000-U+0008 and U+000B-U+001F, keeping tab and newline (Nova's console output filter). */
export function stripControl(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c > 0x1f || c === 0x09 || c === 0x0a) out += ch;
  }
  return out;
}
