// Typed view of an incoming call/cast, checked once at the edge. Anything a Python oslo client would never
// send is a MalformedMessage (builtins.ValueError on the wire). replyTargetOf() is deliberately looser so a
// malformed call that still says where to reply gets a failure reply instead of a silent timeout.

import { contextFromMessage, type RequestContext } from './context.js';
import { MalformedMessage } from './failure.js';

export interface IncomingRequest {
  method: string;
  args: Record<string, unknown>;
  /** Requested API version; oslo's default '1.0' when absent. */
  version: string;
  namespace: string | null;
  /** null for a cast. */
  reply: ReplyTarget | null;
  uniqueId: string | null;
  ctx: RequestContext;
}

export interface ReplyTarget {
  msgId: string;
  replyQ: string;
}

const MAX_SHORTSTR = 255;

function shortStr(v: unknown): string | null {
  return typeof v === 'string' && v.length > 0 && Buffer.byteLength(v, 'utf8') <= MAX_SHORTSTR ? v : null;
}

/** Where to send a reply, if the message names a usable reply queue and message id (whatever else is wrong). */
export function replyTargetOf(msg: Record<string, unknown>): ReplyTarget | null {
  const replyQ = shortStr(msg['_reply_q']);
  const msgId = shortStr(msg['_msg_id']);
  return replyQ && msgId ? { replyQ, msgId } : null;
}

// `"_reply_q": "reply_…"` inside the JSON-encoded inner message, where the quotes are escaped once.
const SNIFF_REPLY_Q = /\\?"_reply_q\\?":\s*\\?"([A-Za-z0-9_.:-]{1,255})\\?"/;
const SNIFF_MSG_ID = /\\?"_msg_id\\?":\s*\\?"([A-Za-z0-9_.:-]{1,255})\\?"/;
const MAX_SNIFF_BYTES = 64 * 1024 * 1024;

/**
 * Best-effort reply target of a body we refuse to parse (too large, invalid UTF-8, broken JSON): a linear scan
 * for the two keys, restricted to the characters oslo's ids use, so the caller gets a prompt ValueError rather
 * than a timeout. Never builds a JSON tree of the untrusted body.
 */
export function sniffReplyTarget(body: Buffer): ReplyTarget | null {
  if (body.length > MAX_SNIFF_BYTES) return null;
  const text = body.toString('latin1');
  const replyQ = SNIFF_REPLY_Q.exec(text)?.[1];
  const msgId = SNIFF_MSG_ID.exec(text)?.[1];
  return replyQ && msgId ? { replyQ, msgId } : null;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseRequest(msg: Record<string, unknown>): IncomingRequest {
  const method = msg['method'];
  if (typeof method !== 'string' || method.length === 0) throw new MalformedMessage('"method" is missing or not a string');
  if (method.length > MAX_SHORTSTR) throw new MalformedMessage('"method" is too long');
  if (!Object.hasOwn(msg, 'args')) throw new MalformedMessage('"args" is missing');
  const args = msg['args'];
  if (!isPlainObject(args)) throw new MalformedMessage('"args" is not an object');
  const version = msg['version'] ?? '1.0';
  if (typeof version !== 'string' || version.length > 32) throw new MalformedMessage('"version" is not a string');
  const namespace = msg['namespace'] ?? null;
  if (namespace !== null && typeof namespace !== 'string') throw new MalformedMessage('"namespace" is not a string');
  const hasReplyQ = msg['_reply_q'] !== undefined && msg['_reply_q'] !== null;
  const hasMsgId = msg['_msg_id'] !== undefined && msg['_msg_id'] !== null;
  const reply = replyTargetOf(msg);
  if ((hasReplyQ || hasMsgId) && !reply) throw new MalformedMessage('"_reply_q" and "_msg_id" must both be short strings');
  const uniqueRaw = msg['_unique_id'];
  let uniqueId: string | null = null;
  if (uniqueRaw !== undefined && uniqueRaw !== null) {
    uniqueId = shortStr(uniqueRaw);
    if (uniqueId === null) throw new MalformedMessage('"_unique_id" is not a short string');
  }
  return { method, args, version, namespace, reply, uniqueId, ctx: contextFromMessage(msg) };
}
