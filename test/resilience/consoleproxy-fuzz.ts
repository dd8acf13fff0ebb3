// The console proxy fuzzer: seeded fast-check inputs for novamon-novncproxy and novamon-serialproxy, of
// three kinds. Plain HTTP requests to the page and noVNC's files (path traversals towards a canary
// included; the serial proxy serves none); WebSocket upgrade
// requests written on raw sockets (hostile tokens in `?token=`, in the `path=` form and in the cookie,
// hostile Origin headers, bad versions and keys, huge headers); and hostile WebSocket frames written
// after a valid upgrade (unmasked, fragmented wrongly, oversized, reserved bits, unknown opcodes, long or
// fragmented control frames, text among binary). Each input says whether a guest connection is allowed.

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { pct, type ApiInput } from './api-fuzz.js';

/** Tokens the database holds: one good, the others must never reach a guest. */
export interface ProxyTokens {
  valid: string;
  expired: string;
  /** Issued for the other console type (serial at the VNC proxy, novnc at the serial proxy). */
  otherType: string;
  /** The proxy's type and unexpired, but its port is not the guest's console any more (validate_console_port says no). */
  stale: string;
}

export type ProxyInput =
  | { kind: 'http'; req: ApiInput; label: string }
  | { kind: 'upgrade'; raw: Buffer; mayConnect: boolean; mustAccept: boolean; label: string }
  | { kind: 'frames'; raw: Buffer; frames: Buffer; label: string };

interface Frame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
  /** Declared payload length when it differs from payload.length. */
  declared?: bigint;
}

export function encodeFrame(f: Frame): Buffer {
  const len = f.declared ?? BigInt(f.payload.length);
  const head = [((f.fin ? 0x80 : 0) | ((f.rsv & 7) << 4) | (f.opcode & 0x0f)) >>> 0];
  const m = f.masked ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (len < 126n) head.push(m | Number(len));
  else if (len < 0x10000n) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len));
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len);
  }
  const key = f.masked ? randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(f.payload);
  if (f.masked) for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (key[i % 4] as number);
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

const closeFrame = (): Buffer => encodeFrame({ fin: true, rsv: 0, opcode: 8, masked: true, payload: Buffer.from([0x03, 0xe8]) });

function frameArbitrary(): fc.Arbitrary<[string, Buffer]> {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
  const f = (label: string, arb: fc.Arbitrary<Frame | Frame[]>): fc.Arbitrary<[string, Buffer]> =>
    arb.map((x) => [label, Buffer.concat((Array.isArray(x) ? x : [x]).map(encodeFrame))]);
  const ok = { fin: true, rsv: 0, masked: true };
  return fc.oneof(
    f('binary', bytes(4096).map((payload) => ({ ...ok, opcode: 2, payload }))),
    f('text', fc.string({ maxLength: 200 }).map((s) => ({ ...ok, opcode: 1, payload: Buffer.from(s) }))),
    f('text invalid utf-8', fc.constant({ ...ok, opcode: 1, payload: Buffer.from([0xff, 0xfe, 0xc0, 0xaf]) })),
    f('unmasked', bytes(64).map((payload) => ({ ...ok, masked: false, opcode: 2, payload }))),
    f('reserved bits', fc.tuple(fc.integer({ min: 1, max: 7 }), bytes(32)).map(([rsv, payload]) => ({ ...ok, rsv, opcode: 2, payload }))),
    f('unknown opcode', fc.tuple(fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15), bytes(32)).map(([opcode, payload]) => ({ ...ok, opcode, payload }))),
    f('long ping', fc.integer({ min: 126, max: 1000 }).map((n) => ({ ...ok, opcode: 9, payload: Buffer.alloc(n, 1) }))),
    f('fragmented ping', fc.constant({ ...ok, fin: false, opcode: 9, payload: Buffer.from('p') })),
    f('ping/pong', fc.constantFrom(9, 10).map((opcode) => ({ ...ok, opcode, payload: Buffer.from('x') }))),
    f('continuation first', bytes(32).map((payload) => ({ ...ok, opcode: 0, payload }))),
    f('fragmented binary', fc.array(bytes(512), { minLength: 2, maxLength: 20 }).map((parts) => parts.map((payload, i) => ({ ...ok, fin: i === parts.length - 1, opcode: i === 0 ? 2 : 0, payload })))),
    f('text inside binary fragments', bytes(16).map((payload) => [{ ...ok, fin: false, opcode: 2, payload }, { ...ok, opcode: 1, payload }, { ...ok, opcode: 0, payload }])),
    f('new message while fragmented', bytes(16).map((payload) => [{ ...ok, fin: false, opcode: 2, payload }, { ...ok, fin: false, opcode: 2, payload }])),
    f('declared 2^63', fc.constant({ ...ok, opcode: 2, payload: Buffer.alloc(8), declared: 0x7fffffffffffffffn })),
    f('declared 64-bit msb', fc.constant({ ...ok, opcode: 2, payload: Buffer.alloc(8), declared: 0x8000000000000000n })),
    f('declared over maxPayload', fc.integer({ min: 4 * 1024 * 1024 + 1, max: 1 << 30 }).map((n) => ({ ...ok, opcode: 2, payload: Buffer.alloc(16), declared: BigInt(n) }))),
    f('close with bad code', fc.constantFrom(0, 999, 1004, 1005, 1006, 2999, 5000, 65535).map((code) => ({ ...ok, opcode: 8, payload: Buffer.from([code >> 8, code & 0xff]) }))),
    f('close with 1 byte or bad reason', fc.constantFrom(Buffer.from([3]), Buffer.from([3, 0xe8, 0xff, 0xfe])).map((payload) => ({ ...ok, opcode: 8, payload }))),
    f('many tiny frames', fc.integer({ min: 50, max: 500 }).map((n) => Array.from({ length: n }, () => ({ ...ok, opcode: 2, payload: Buffer.from([n & 0xff]) })))),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a): [string, Buffer] => ['raw garbage', Buffer.from(a)]),
  );
}

/** The request line and headers of one upgrade request. */
interface Upgrade {
  target: string;
  headers: Array<[string, string]>;
}

function rawRequest(u: Upgrade, hostPort: string): Buffer {
  const lines = [`GET ${u.target} HTTP/1.1`, `Host: ${hostPort}`, ...u.headers.map(([k, v]) => `${k}: ${v}`), '', ''];
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

const goodKey = (): string => randomBytes(16).toString('base64');

/**
 * `baseScheme` is the scheme of the proxy's base URL: a ws:// one (the serial proxy) also admits the
 * http page that opens it; an http:// one (noVNC) admits http Origins only.
 */
export function proxyInputArbitrary(opts: { port: number; tokens: ProxyTokens; traversals: string[]; baseScheme: 'http' | 'ws' }): fc.Arbitrary<ProxyInput> {
  const host = `127.0.0.1:${opts.port}`;
  const t = opts.tokens;
  type Tok = [string, string];
  const tok = (role: string) => (v: string): Tok => [role, v];
  const token: fc.Arbitrary<Tok> = fc.oneof(
    { weight: 5, arbitrary: fc.constant<Tok>(['valid', t.valid]) },
    { weight: 3, arbitrary: fc.constantFrom<Tok>(['expired', t.expired], ['other-type', t.otherType], ['stale', t.stale]) },
    { weight: 2, arbitrary: fc.uuid().map(tok('forged')) },
    { weight: 1, arbitrary: fc.integer({ min: 256, max: 12_000 }).map((n) => tok('huge')('a'.repeat(n))) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map(tok('non-ascii')) },
    { weight: 1, arbitrary: fc.constantFrom("' or 1=1 --", "x'; drop table console_auth_tokens; --", `${t.valid}' --`, '%', '_', `${t.valid}x`, t.valid.toUpperCase(), ` ${t.valid}`, `${t.valid}\u0000`).map(tok('sql-ish')) },
  );
  const form = fc.constantFrom('query', 'path', 'path-websockify', 'cookie', 'none');
  const origin = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom<[boolean, string | null]>([true, null], [true, `http://${host}`], [opts.baseScheme === 'ws', 'ws://127.0.0.1'], [true, `HTTP://${host}`]) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<[boolean, string | null]>(
        [false, 'http://evil.example'], [false, `https://${host}`], [false, 'null'], [false, ''], [false, 'http://127.0.0.1.evil.example'], [false, 'javascript:alert(1)'],
        [false, 'http://[::1'], [false, `http://${'x'.repeat(9000)}`], [false, 'http://évil.example'], [false, 'file://127.0.0.1/'], [false, `wss://${host}`],
      ),
    },
  );
  const version = fc.constantFrom('13', '13', '13', '8', '0', '', 'abc', '13, 8', '99999999999');
  const key = fc.constantFrom('good', 'good', 'good', 'missing', 'empty', 'short', 'long');
  const upgradeHeader = fc.constantFrom('websocket', 'websocket', 'websocket', 'WebSocket', 'h2c', 'missing');
  const pad = fc.constantFrom(0, 0, 0, 4000, 20_000, 70_000);

  const upgrade = fc.record({ token, form, origin, version, key, upgradeHeader, pad }).map((r): ProxyInput => {
    const [role, value] = r.token;
    const target = r.form === 'query' ? `/?token=${pct(value)}` : r.form === 'path' ? `/websockify?path=${pct(`?token=${value}`)}` : r.form === 'path-websockify' ? `/?path=${pct(`websockify?token=${value}`)}` : '/websockify';
    const keyValue = { good: goodKey(), empty: '', short: 'c2hvcnQ=', long: 'A'.repeat(1000) } as Record<string, string>;
    const headers: Array<[string, string]> = [];
    if (r.upgradeHeader !== 'missing') headers.push(['Upgrade', r.upgradeHeader], ['Connection', 'Upgrade']);
    if (r.key !== 'missing') headers.push(['Sec-WebSocket-Key', keyValue[r.key] as string]);
    headers.push(['Sec-WebSocket-Version', r.version], ['Sec-WebSocket-Protocol', 'binary']);
    if (r.origin[1] !== null) headers.push(['Origin', r.origin[1]]);
    if (r.form === 'cookie') headers.push(['Cookie', `token=${pct(value)}`]);
    if (r.pad > 0) headers.push(['X-Pad', 'p'.repeat(r.pad)]);
    const tokenSent = r.form !== 'none';
    const mayConnect = tokenSent && role === 'valid' && r.origin[0];
    const mustAccept = mayConnect && r.version === '13' && r.key === 'good' && r.upgradeHeader !== 'h2c' && r.upgradeHeader !== 'missing' && r.pad <= 4000;
    const label = `upgrade token=${tokenSent ? role : 'none'}(${r.form}) origin=${(r.origin[1] ?? '-').slice(0, 40)} version=${r.version} key=${r.key} upgrade=${r.upgradeHeader} pad=${r.pad}`;
    return { kind: 'upgrade', raw: rawRequest({ target, headers }, host), mayConnect, mustAccept, label };
  });

  const frames = fc.array(frameArbitrary(), { minLength: 1, maxLength: 4 }).map((list): ProxyInput => {
    const raw = rawRequest({ target: `/?token=${pct(t.valid)}`, headers: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Key', goodKey()], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Protocol', 'binary'], ['Origin', `http://${host}`]] }, host);
    return { kind: 'frames', raw, frames: Buffer.concat(list.map(([, b]) => b)), label: `frames ${list.map(([l, b]) => `${l} (${b.length} B)`).join(' + ')}` };
  });

  const segment = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...opts.traversals.map(pct), ...opts.traversals.map((x) => x.replace(/\0/g, '%00'))) },
    { weight: 2, arbitrary: fc.constantFrom('rfb.js', 'util/events.js', '../package.json', '..%2fpackage.json', '%2e%2e/%2e%2e/package.json', '%c0%ae%c0%ae/', '%', '%zz', '.', '..', '') },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map(pct) },
    { weight: 1, arbitrary: fc.integer({ min: 100, max: 9000 }).map((n) => 'x'.repeat(n)) },
  );
  const http = fc
    .record({
      method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS', 'DELETE'),
      template: fc.constantFrom('/', '/vnc.html', '/vnc_auto.html', '/vnc_lite.html', '/novamon-console.js', '/core/{s}', '/vendor/{s}', '/core/../{s}', '/{s}', '/vendor/pako/{s}', '/websockify'),
      seg: segment,
      token: token.map(([, v]) => v),
    })
    .map((r): ProxyInput => {
      const p = r.template.replace('{s}', r.seg) + (r.template.endsWith('.html') || r.template === '/websockify' ? `?token=${pct(r.token)}` : '');
      const label = `${r.method} ${p.length > 120 ? `${p.slice(0, 117)}...` : p}`;
      return { kind: 'http', req: { method: r.method, path: p, headers: { Host: host }, body: null, label }, label };
    });

  return fc.oneof({ weight: 3, arbitrary: http }, { weight: 4, arbitrary: upgrade }, { weight: 3, arbitrary: frames });
}

export interface RawAnswer {
  /** HTTP status of the answer, 0 when the connection closed without one. */
  status: number;
  head: Buffer;
  /** True when the proxy closed the connection (rather than the test giving up on it). */
  closedByPeer: boolean;
}

/**
 * Writes an upgrade request on a fresh socket and reads the answer's head. After a 101, `frames` (if any)
 * are written followed by a close frame and a half-close, and the proxy has `timeoutMs` to close.
 */
export function sendRaw(port: number, raw: Buffer, frames: Buffer | null, timeoutMs = 10_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let head = Buffer.alloc(0);
    let status = 0;
    let done = false;
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ status, head, closedByPeer });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('data', (chunk: Buffer) => {
      if (status !== 0) return; // frames from the guest after the handshake: not read
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head.subarray(0, head.indexOf('\r\n')).toString('latin1'))?.[1] ?? -1);
      if (status !== 101) return finish(true); // a refusal, or a plain HTTP answer on a keep-alive connection
      sock.end(Buffer.concat([frames ?? Buffer.alloc(0), closeFrame()]));
    });
    sock.write(raw);
  });
}
