// POST /servers/{id}/action: the power actions, os-getConsoleOutput, os-getVNCConsole and
// os-getSerialConsole (before 2.6), trigger_crash_dump and novamon's monitor passthrough, each in Nova's
// order: body schema, scoped lookup (404), policy (403), then compute.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ComputeApi } from './compute-api.js';
import { ApiFault, badRequest, notFound, unexpectedApiError } from './faults.js';
import { contextOf, sendFault, sendJson, versionOf } from './http.js';
import { isSupported } from './microversion.js';
import { authorize } from './policy.js';
import { bodyOrThrow, decodeBody, type IdParams } from './server-query.js';
import { schemas } from './validation.js';

export type ActionHandler = (req: FastifyRequest<IdParams>, reply: FastifyReply, body: Record<string, unknown>) => Promise<FastifyReply>;
const power = (compute: ComputeApi, op: 'stop' | 'start' | 'pause' | 'unpause', rule: Parameters<typeof authorize>[1]): ActionHandler => async (req, reply) => {
  const ctx = contextOf(req);
  const row = await compute.get(ctx, req.params.id);
  authorize(ctx, rule, { projectId: row.projectId });
  await compute.powerAction(ctx, row, op, { serverId: req.params.id });
  return reply.code(202).type('application/json').send('');
};

/** os-getVNCConsole / os-getSerialConsole: the console URLs before remote-consoles (2.6) replaced them. */
const consoleUrl = (
  compute: ComputeApi,
  key: 'os-getVNCConsole' | 'os-getSerialConsole',
  method: 'get_vnc_console' | 'get_serial_console',
  schema: (typeof schemas)['vncConsole' | 'serialConsole'],
): ActionHandler => async (req, reply) => {
  // Replaced by remote-consoles in 2.6: Nova answers as if the action did not exist at this version.
  if (!isSupported(versionOf(req), '2.1', '2.5')) return sendFault(reply, notFound());
  const body = bodyOrThrow(req, schema);
  const ctx = contextOf(req);
  authorize(ctx, 'os_compute_api:os-remote-consoles');
  const type = (body[key] as { type: string }).type;
  const row = await compute.get(ctx, req.params.id);
  try {
    const url = await compute.getConsoleUrl(ctx, row, method, type, req.params.id);
    return sendJson(reply, 200, { console: { type, url } });
  } catch (err) {
    // These controllers do not expect ConsoleTypeInvalid (Zed answers xvpvnc with a 500).
    if (err instanceof ApiFault && err.status === 400 && err.message.startsWith('Invalid console type')) {
      throw unexpectedApiError('nova.exception.ConsoleTypeInvalid');
    }
    throw err;
  }
};

/** Every action this API serves, by the key of its one-key body. */
function actionHandlers(compute: ComputeApi): Record<string, ActionHandler> {
  return {
    'os-stop': power(compute, 'stop', 'os_compute_api:servers:stop'),
    'os-start': power(compute, 'start', 'os_compute_api:servers:start'),
    pause: power(compute, 'pause', 'os_compute_api:os-pause-server:pause'),
    unpause: power(compute, 'unpause', 'os_compute_api:os-pause-server:unpause'),
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
    'os-getVNCConsole': consoleUrl(compute, 'os-getVNCConsole', 'get_vnc_console', schemas.vncConsole),
    'os-getSerialConsole': consoleUrl(compute, 'os-getSerialConsole', 'get_serial_console', schemas.serialConsole),
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
}

export function registerServerActionRoute(app: FastifyInstance, compute: ComputeApi, monitorPassthrough: boolean): void {
  const handlers = actionHandlers(compute);
  app.post<IdParams>('/v2.1/servers/:id/action', async (req, reply) => {
    const decoded = decodeBody(req);
    if (!decoded.ok) return sendFault(reply, badRequest('Malformed request body'));
    const body = decoded.value;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || Object.keys(body).length !== 1) {
      return sendFault(reply, badRequest('Malformed request body'));
    }
    const action = Object.keys(body)[0] as string;
    const handler = handlers[action];
    if (!handler || (action === 'novamon-monitorCommand' && !monitorPassthrough)) {
      return sendFault(reply, badRequest(`There is no such action: ${action}`));
    }
    return handler(req, reply, body as Record<string, unknown>);
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
