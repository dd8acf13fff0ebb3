// The REST API fuzzer: seeded fast-check requests over every novamon-api route (and some that do not
// exist), with hostile path segments, query strings (the name filter's regular expressions included),
// headers (microversions, content types, tokens) and bodies (server actions mutated, deep nesting, huge,
// not JSON). Shared by the resilience test and `npm run soak -- --fuzz-api N`.

import http from 'node:http';
import fc from 'fast-check';

export interface ApiInput {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
  label: string;
}

const ACTIONS: unknown[] = [
  { 'os-start': null }, { 'os-stop': null }, { reboot: { type: 'HARD' } }, { reboot: { type: 'SOFT' } }, { pause: null }, { unpause: null },
  { suspend: null }, { resume: null }, { 'os-getConsoleOutput': { length: 10 } }, { 'os-getConsoleOutput': { length: -1 } },
  { 'os-getVNCConsole': { type: 'novnc' } }, { 'os-getSerialConsole': { type: 'serial' } }, { 'os-resetState': { state: 'active' } },
];

// Patterns that backtrack for ever in a backtracking engine, and plain garbage.
const NAME_FILTERS = ['(a|a)*z', '(a+)+$', '(a|aa)+b', '^(\\w+\\s?)*$', '([a-z]+)*[0-9]', '.*.*.*.*.*.*.*.*=', '[', '(', '\\', '*', '(?<x>a)\\k<x>', 'a{1000000}', 'x'.repeat(5000), '%', '_', "'; drop table instances; --", '\u0000', '\ud800'];

/** Percent-encodes every byte but unreserved ones; lone surrogates go as UTF-8 of U+FFFD, as a browser sends them. */
export function pct(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

function pathFor(template: string, id: string, req: string): string {
  return template.replace('{id}', id).replace('{req}', req);
}

export function apiInputArbitrary(opts: { uuid: string; traversals: string[] }): fc.Arbitrary<ApiInput> {
  const templates = ['/', '/v2.1', '/v2.1/', '/v2.1/servers', '/v2.1/servers/detail', '/v2.1/servers/{id}', '/v2.1/servers/{id}/action', '/v2.1/servers/{id}/remote-consoles', '/v2.1/servers/{id}/diagnostics', '/v2.1/servers/{id}/os-instance-actions', '/v2.1/servers/{id}/os-instance-actions/{req}', '/v2.1/images', '/v2.1/images/detail', '/v2.1/images/{id}', '/v2.1/flavors', '/v2.1/flavors/detail', '/v2.1/flavors/{id}', '/healthcheck', '/metrics', '/v2.1/{id}', '/{id}'];
  const segment = fc.oneof(
    { arbitrary: fc.constant(opts.uuid), weight: 6 },
    { arbitrary: fc.constantFrom(...opts.traversals.map(pct), ...opts.traversals.map((t) => t.replace(/\0/g, '%00'))), weight: 3 },
    { arbitrary: fc.string({ maxLength: 40 }).map(pct), weight: 2 },
    { arbitrary: fc.integer({ min: 1, max: 9000 }).map((n) => 'x'.repeat(n)), weight: 1 },
    { arbitrary: fc.constantFrom('%', '%zz', '..', '.', '%2e%2e', '%c0%ae', '%ff%fe', 'req-' + '0'.repeat(36)), weight: 1 },
  );
  const queryValue = fc.oneof(fc.constantFrom(...NAME_FILTERS), fc.string({ maxLength: 30 }), fc.integer().map(String), fc.constantFrom('-1', '0', '1e309', 'NaN', 'true', '2026-13-45T99:99:99Z'));
  const query = fc.array(fc.tuple(fc.constantFrom('name', 'status', 'limit', 'marker', 'changes-since', 'changes-before', 'sort_key', 'sort_dir', 'all_tenants', 'project_id', 'host', 'ip', 'deleted', 'flavor', 'image', 'x'), queryValue), { maxLength: 5 });
  const json = fc.oneof(
    { arbitrary: fc.constantFrom(...ACTIONS).map((a) => JSON.stringify(a)), weight: 5 },
    { arbitrary: fc.tuple(fc.constantFrom(...ACTIONS), fc.jsonValue({ maxDepth: 3 })).map(([a, v]) => JSON.stringify({ [Object.keys(a as object)[0] as string]: v })), weight: 4 },
    { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)), weight: 2 },
    { arbitrary: fc.constantFrom(...opts.traversals).map((t) => JSON.stringify({ 'os-getConsoleOutput': { length: 5, path: t }, remote_console: { protocol: t, type: t } })), weight: 1 },
    { arbitrary: fc.integer({ min: 1000, max: 100_000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`), weight: 1 },
    { arbitrary: fc.integer({ min: 100_000, max: 400_000 }).map((n) => JSON.stringify({ pause: 'A'.repeat(n) })), weight: 1 },
    { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
  );
  const headers = fc.record(
    {
      'X-Auth-Token': fc.oneof(fc.constant('admin:admin'), fc.constant('demo:demo'), fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')), fc.constant('a'.repeat(8000))),
      'OpenStack-API-Version': fc.oneof(fc.constantFrom('compute 2.1', 'compute 2.96', 'compute latest', 'compute 2.999', 'compute 3.0', 'compute 2.', 'compute -1', 'volume 2.1', 'compute 02.010'), fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, ''))),
      'X-OpenStack-Nova-API-Version': fc.constantFrom('2.1', '2.96', 'latest', '9.9', '2.0x'),
      'Content-Type': fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'multipart/form-data; boundary=x'),
      Accept: fc.constantFrom('application/json', 'text/html', '*/*', 'application/xml'),
    },
    { requiredKeys: ['X-Auth-Token'] },
  );
  return fc
    .record({
      method: fc.constantFrom('GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
      template: fc.constantFrom(...templates),
      id: segment,
      req: segment,
      query,
      headers,
      body: fc.option(json, { freq: 2 }),
    })
    .map((r) => {
      const qs = r.query.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
      const p = pathFor(r.template, r.id, r.req) + (qs ? `?${qs}` : '');
      const body = r.body === null || r.method === 'GET' || r.method === 'HEAD' ? null : Buffer.from(r.body);
      const label = `${r.method} ${p.length > 120 ? `${p.slice(0, 117)}...` : p}${body ? ` body ${body.length} B` : ''}`;
      return { method: r.method, path: p, headers: r.headers as Record<string, string>, body, label };
    });
}

/** Inputs that once found a problem, sent before the generated ones in every run. */
export function regressionInputs(traversalList: string[]): ApiInput[] {
  const h = { 'X-Auth-Token': 'admin:admin' };
  const get = (p: string): ApiInput => ({ method: 'GET', path: p, headers: h, body: null, label: `GET ${p}` });
  return [
    // A backtracking name filter held the loop for seconds against a 28-character server name.
    get('/v2.1/servers?name=(a%7Ca)*z'),
    get('/v2.1/servers/detail?name=(a%2B)%2B%24'),
    get('/v2.1/servers/detail?all_tenants=1&name=%5E(%5Cw%2B%5Cs%3F)*%24'),
    ...traversalList.slice(0, 4).map((t) => get(`/v2.1/servers/${pct(t)}/diagnostics`)),
  ];
}

export interface ApiAnswer {
  status: number;
  body: Buffer;
  error?: string;
}

/** One request on a fresh connection; never rejects (a transport error is an answer too). */
export function send(baseUrl: string, input: ApiInput, timeoutMs = 15_000): Promise<ApiAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    let req: http.ClientRequest;
    try {
      req = http.request(
      { host: url.hostname, port: url.port, method: input.method, path: input.path, headers: { ...input.headers, ...(input.body ? { 'Content-Length': String(input.body.length) } : {}) }, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', (err) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), error: String(err) }));
      },
    );
    } catch (err) {
      // Node refused to send it (a header or path it will not put on the wire): nothing reached the service.
      resolve({ status: -1, body: Buffer.alloc(0), error: String(err) });
      return;
    }
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, body: Buffer.alloc(0), error: String(err) }));
    req.end(input.body ?? undefined);
  });
}
