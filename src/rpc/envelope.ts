// The oslo.messaging 2.0 envelope: every AMQP body is {"oslo.version": "2.0", "oslo.message": "<JSON string>"}.
// Encoding mirrors Python's json.dumps (", "/": " separators, ASCII-only output) so our bytes read like oslo's;
// decoding is the untrusted edge: size cap, strict UTF-8, JSON, envelope shape and major version are checked here.

export const OSLO_VERSION = '2.0';
const OSLO_MAJOR = '2';
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const MAX_DEPTH = 128;

export type EnvelopeErrorReason = 'too_large' | 'not_utf8' | 'not_json' | 'bad_envelope' | 'bad_version' | 'not_object';

/** A body that is not a usable oslo message. `partial` holds the inner message when it could be read at all. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
  constructor(
    message: string,
    readonly reason: EnvelopeErrorReason,
  ) {
    super(message);
  }
}

// Python's ensure_ascii escapes everything outside ' '..'~'; JSON.stringify already escapes the C0 controls.
const NON_ASCII = /[\u007f-\uffff]/g;
function escapeNonAscii(ch: string): string {
  return '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0');
}

/** JSON text of a string exactly as Python's json.dumps writes it. */
export function pyJsonString(s: string): string {
  const q = JSON.stringify(s);
  // Fast path: most wire strings (ids, method names) are plain ASCII.
  return /[^\x20-\x7e]/.test(s) ? q.replace(NON_ASCII, escapeNonAscii) : q;
}

/**
 * Serialise a value the way Python's json.dumps does by default (oslo's jsonutils.dumps), so a peer or a
 * packet capture sees the same text a Python service would send. Semantics otherwise follow JSON.stringify:
 * toJSON is honoured, undefined/functions are dropped from objects and become null in arrays.
 */
export function pyJsonDumps(value: unknown): string {
  return dump(value, 0);
}

function dump(value: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new TypeError('value nests too deeply to serialise');
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return pyJsonString(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('a bigint cannot be serialised to JSON');
    case 'function':
    case 'symbol':
      return 'null';
    default:
      break;
  }
  const obj = value as { toJSON?: () => unknown };
  if (typeof obj.toJSON === 'function') return dump(obj.toJSON(), depth + 1);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ', ';
      out += dump(value[i], depth + 1);
    }
    return out + ']';
  }
  let out = '{';
  let first = true;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    out += (first ? '' : ', ') + pyJsonString(key) + ': ' + dump(v, depth + 1);
    first = false;
  }
  return out + '}';
}

/** The AMQP body for an oslo message (call, cast or reply). */
export function encodeEnvelope(message: Record<string, unknown>): Buffer {
  return encodeEnvelopeText(pyJsonDumps(message));
}

/** The AMQP body around an already serialised inner message (lets the hot path build replies by concatenation). */
export function encodeEnvelopeText(innerJson: string): Buffer {
  return Buffer.from(`{"oslo.version": "${OSLO_VERSION}", "oslo.message": ${pyJsonString(innerJson)}}`, 'utf8');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parse an AMQP body into the inner oslo message. Throws EnvelopeError for anything that is not an oslo 2.x
 * envelope around a JSON object. Like oslo's deserialize_msg, a body that is a JSON object without the
 * envelope keys is taken as the message itself (pre-envelope senders).
 */
export function decodeEnvelope(body: Buffer, opts: { maxBytes?: number } = {}): Record<string, unknown> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (body.length > maxBytes) throw new EnvelopeError(`message body of ${body.length} bytes exceeds the ${maxBytes} byte limit`, 'too_large');
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new EnvelopeError('message body is not valid UTF-8', 'not_utf8');
  }
  const outer = parseJson(text, 'message body');
  if (!isPlainObject(outer)) throw new EnvelopeError('message body is not a JSON object', 'not_object');
  const hasVersion = Object.hasOwn(outer, 'oslo.version');
  const hasMessage = Object.hasOwn(outer, 'oslo.message');
  if (!hasVersion && !hasMessage) return outer;
  const version = outer['oslo.version'];
  if (typeof version !== 'string') throw new EnvelopeError('oslo.version is missing or not a string', 'bad_envelope');
  if (version.split('.')[0] !== OSLO_MAJOR) {
    throw new EnvelopeError(`unsupported oslo.version ${JSON.stringify(version.slice(0, 20))} (this server speaks ${OSLO_VERSION})`, 'bad_version');
  }
  const raw = outer['oslo.message'];
  if (typeof raw !== 'string') throw new EnvelopeError('oslo.message is missing or not a string', 'bad_envelope');
  const inner = parseJson(raw, 'oslo.message');
  if (!isPlainObject(inner)) throw new EnvelopeError('oslo.message is not a JSON object', 'not_object');
  return inner;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new EnvelopeError(`${what} is not valid JSON`, 'not_json');
  }
}
