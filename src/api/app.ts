// novamon-api's HTTP application (fastify): the pipeline Nova's api-paste builds (request ids, body size
// limit, authentication, microversions, fault wrapping), version discovery, the tolerated image and
// flavor lookups, the unauthenticated /healthcheck and /metrics, and the server routes (routes-servers.ts).

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../logging.js';
import type { Metrics } from '../metrics.js';
import { newRequestId } from '../rpc/context.js';
import type { Authenticator } from './auth.js';
import type { ComputeApi } from './compute-api.js';
import { ApiFault, badRequest, notFound, unexpectedApiError, webobErrorPage } from './faults.js';
import {
  API_VERSION_HEADER,
  InvalidApiVersionString,
  LEGACY_VERSION_HEADER,
  UnsupportedApiVersion,
  isSupported,
  negotiateVersion,
  versionString,
  type ApiVersion,
} from './microversion.js';
import { baseUrl, sendFault, sendJson, versionOf, type NovaRequestState, type Zone } from './http.js';
import { registerServerRoutes } from './routes-servers.js';
import { FLAVOR_ID, versionShow, versionsIndex } from './views.js';

export interface ApiAppOptions {
  compute: ComputeApi;
  authenticator: Authenticator;
  logger: Logger;
  metrics?: Metrics;
  /** Problems that make /healthcheck answer 503 (empty = healthy). */
  health?: () => Promise<string[]>;
  /** [api] max_request_body_size. */
  maxBodyBytes: number;
  /** [api] enable_monitor_passthrough. */
  monitorPassthrough: boolean;
}

const GLOBAL_REQUEST_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const JSON_TYPES = new Set(['application/json', 'application/vnd.openstack.compute+json']);

function zoneOf(path: string): Zone {
  if (path === '/') return 'root';
  if (path === '/v2.1' || path === '/v2.1/') return 'version-doc';
  if (path.startsWith('/v2.1/')) return 'api';
  if (path === '/healthcheck' || path === '/metrics') return 'ops';
  return 'other';
}

export async function buildApiApp(opts: ApiAppOptions): Promise<FastifyInstance> {
  const log = opts.logger.child({ component: 'api' });
  const app = Fastify({ logger: false, bodyLimit: opts.maxBodyBytes, return503OnClosing: true, forceCloseConnections: true });

  // Bodies are kept raw: handlers parse them so that bad JSON gets Nova's answer, not fastify's.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.decorateRequest('nova', null as unknown as NovaRequestState);

  app.addHook('onRequest', onRequest(opts));
  registerHooks(app, opts, log);
  registerLookupRoutes(app, opts);
  registerServerRoutes(app, { compute: opts.compute, monitorPassthrough: opts.monitorPassthrough, logger: log });
  await app.ready();
  return app;
}

/** Every request: ids, the zone, and for the API zone the body bound, authentication and the microversion. */
function onRequest(opts: ApiAppOptions) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const path = req.url.split('?')[0] ?? '/';
    const inbound = req.headers['x-openstack-request-id'];
    const global = typeof inbound === 'string' && GLOBAL_REQUEST_ID.test(inbound) ? inbound : null;
    req.nova = { zone: zoneOf(path), requestId: newRequestId(), globalRequestId: global, version: null, ctx: null, started: performance.now() };
    const zone = req.nova.zone;
    if (zone === 'version-doc' || zone === 'api') {
      reply.header('X-OpenStack-Request-Id', req.nova.requestId);
      reply.header('X-Compute-Request-Id', req.nova.requestId);
    }
    if (zone === 'api') {
      // oslo's sizelimit runs before authentication: an announced oversized body is refused unread.
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > opts.maxBodyBytes) return sendTooLarge(reply, req, opts.maxBodyBytes);
      const outcome = await opts.authenticator.authenticate(req.headers, baseUrl(req));
      if (!outcome.ok) {
        for (const [k, v] of Object.entries(outcome.headers)) reply.header(k, v);
        reply.code(outcome.status);
        if (outcome.contentType) reply.type(outcome.contentType);
        return reply.send(outcome.body);
      }
      const id = outcome.identity;
      req.nova.ctx = {
        userId: id.userId,
        projectId: id.projectId,
        isAdmin: id.isAdmin,
        roles: id.roles,
        requestId: req.nova.requestId,
        globalRequestId: global,
        userName: id.userName,
        projectName: id.projectName,
        raw: { remote_address: req.ip },
      };
    }
    if ((zone === 'version-doc' || zone === 'api') && !req.is404) {
      try {
        req.nova.version = negotiateVersion(req.headers);
      } catch (err) {
        if (err instanceof InvalidApiVersionString) return sendFault(reply, badRequest(err.message));
        if (err instanceof UnsupportedApiVersion) {
          req.nova.version = err.version;
          return sendFault(reply, new ApiFault(406, err.message));
        }
        throw err;
      }
    }
    return undefined;
  };
}

/** Content type, version headers, metrics, errors and the 404 page, as Nova's WSGI stack answers them. */
function registerHooks(app: FastifyInstance, opts: ApiAppOptions, log: Logger): void {
  // Nova's Resource: a body must be JSON (or carry no content type at all).
  app.addHook('preHandler', async (req, reply) => {
    if (req.nova.zone !== 'api' || req.method !== 'POST') return undefined;
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    if (type !== '' && type !== 'text/plain' && !JSON_TYPES.has(type)) return sendFault(reply, new ApiFault(415, 'Unsupported Content-Type'));
    return undefined;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const v = req.nova?.version;
    if (v && !req.is404 && (req.nova.zone === 'api' || req.nova.zone === 'version-doc')) {
      reply.header(API_VERSION_HEADER, `compute ${versionString(v)}`);
      reply.header(LEGACY_VERSION_HEADER, versionString(v));
      reply.header('Vary', [API_VERSION_HEADER, LEGACY_VERSION_HEADER]);
    }
    return payload;
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!opts.metrics || !req.nova) return;
    const route = req.is404 ? 'unrouted' : (req.routeOptions.url ?? 'unrouted');
    opts.metrics.httpRequests.inc({ route, method: req.method, code: String(reply.statusCode) });
    opts.metrics.httpLatency.observe({ route, method: req.method }, (performance.now() - req.nova.started) / 1000);
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof ApiFault) return sendFault(reply, err);
    const code = (err as { code?: string }).code;
    if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendTooLarge(reply, req, opts.maxBodyBytes);
    if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendFault(reply, new ApiFault(415, 'Unsupported Content-Type'));
    log.error({ err, request_id: req.nova?.requestId, url: req.url }, 'unexpected error in an API handler');
    return sendFault(reply, unexpectedApiError(err instanceof Error ? err.name : 'Error'));
  });

  // Unrouted paths (and methods a path does not have) get webob's 404 page, as Nova's router answers.
  app.setNotFoundHandler((req, reply) => {
    const page = webobErrorPage(404, 'The resource could not be found.', req.headers.accept);
    return reply.code(404).type(page.contentType).send(page.body);
  });
}

/** Versions, operations, and the image and flavor lookups clients make on the way. */
function registerLookupRoutes(app: FastifyInstance, opts: ApiAppOptions): void {
  // --- versions ---------------------------------------------------------------------------------
  app.get('/', async (req, reply) => sendJson(reply, 200, versionsIndex(baseUrl(req))));
  app.get('/v2.1', async (req, reply) => sendJson(reply, 200, versionShow(baseUrl(req))));
  app.get('/v2.1/', async (req, reply) => sendJson(reply, 200, versionShow(baseUrl(req))));

  // --- operations -------------------------------------------------------------------------------
  app.get('/healthcheck', async (_req, reply) => {
    const problems = opts.health ? await opts.health() : [];
    reply.type('text/plain; charset=UTF-8');
    return problems.length > 0 ? reply.code(503).send(problems.join('\n')) : reply.code(200).send('OK');
  });
  app.get('/metrics', async (_req, reply) => {
    if (!opts.metrics) return reply.code(404).send('');
    return reply.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });

  // --- lookups clients make on the way (images through the old proxy, flavors) ------------------
  const imagesGone = (req: FastifyRequest) => !isSupported(versionOf(req), '2.1', '2.35');
  app.get('/v2.1/images', async (req, reply) => (imagesGone(req) ? sendFault(reply, notFound()) : sendJson(reply, 200, { images: [] })));
  app.get('/v2.1/images/detail', async (req, reply) => (imagesGone(req) ? sendFault(reply, notFound()) : sendJson(reply, 200, { images: [] })));
  app.get<{ Params: { id: string } }>('/v2.1/images/:id', async (req, reply) =>
    sendFault(reply, imagesGone(req) ? notFound() : notFound('Image not found.')),
  );
  app.get('/v2.1/flavors', async (req, reply) => sendJson(reply, 200, { flavors: [flavorSummary(baseUrl(req))] }));
  app.get('/v2.1/flavors/detail', async (req, reply) => sendJson(reply, 200, { flavors: [flavorDetail(baseUrl(req), versionOf(req))] }));
  app.get<{ Params: { id: string } }>('/v2.1/flavors/:id', async (req, reply) =>
    req.params.id === FLAVOR_ID
      ? sendJson(reply, 200, { flavor: flavorDetail(baseUrl(req), versionOf(req)) })
      : sendFault(reply, notFound(`Flavor ${req.params.id} could not be found.`)),
  );
}

function sendTooLarge(reply: FastifyReply, req: FastifyRequest, max: number): FastifyReply {
  const page = webobErrorPage(413, `Request is too large. Larger than max_request_body_size (${max}).`, req.headers.accept);
  // The request was not read: close the connection rather than drain a body we refused.
  reply.header('Connection', 'close');
  return reply.code(413).type(page.contentType).send(page.body);
}

function flavorSummary(base: string): Record<string, unknown> {
  return {
    id: FLAVOR_ID,
    name: FLAVOR_ID,
    links: [
      { rel: 'self', href: `${base}/v2.1/flavors/${FLAVOR_ID}` },
      { rel: 'bookmark', href: `${base}/flavors/${FLAVOR_ID}` },
    ],
  };
}

/** The one flavor novamon reports for every server: it does not know the real one. */
function flavorDetail(base: string, v: ApiVersion): Record<string, unknown> {
  return {
    ...flavorSummary(base),
    ram: 0,
    disk: 0,
    swap: 0,
    'OS-FLV-EXT-DATA:ephemeral': 0,
    'OS-FLV-DISABLED:disabled': false,
    vcpus: 0,
    'os-flavor-access:is_public': true,
    rxtx_factor: 1.0,
    ...(isSupported(v, '2.55') ? { description: null } : {}),
    ...(isSupported(v, '2.61') ? { extra_specs: {} } : {}),
  };
}
