// The hostile-input fuzzer shared by the resilience test (a few thousand messages) and the report run
// (`npm run soak -- --fuzz 100000`): fast-check, seeded, mutates valid oslo calls (wrong types, missing
// and extra keys, deep nesting, huge strings and arrays, invalid UTF-8, wrong oslo.version, non-JSON,
// binary), publishes them raw to novamon's server queue and checks every answerable call is answered.

import { randomUUID } from 'node:crypto';
import { connect, type ConsumeMessage } from 'amqplib';
import fc from 'fast-check';
import { contextToMessage } from '../../src/rpc/context.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/rpc/envelope.js';
import { sniffReplyTarget } from '../../src/rpc/message.js';
import { instancePrimitive } from '../../src/rpc/objects/instance.js';
import type { TimedInput } from './abuse.js';

export type MutationKind =
  | 'wrong-type'
  | 'missing-key'
  | 'extra-keys'
  | 'deep-nesting'
  | 'huge-string'
  | 'huge-array'
  | 'invalid-utf8'
  | 'wrong-oslo-version'
  | 'inner-not-json'
  | 'non-json'
  | 'binary'
  | 'hostile-object';

export interface FuzzCase {
  kind: MutationKind;
  body: Buffer;
}

const hex = () => randomUUID().replaceAll('-', '');

function baseMessage(method: number, host: string): Record<string, unknown> {
  const instance = instancePrimitive({ uuid: '8f4a3bd1-5a0e-4a3b-9c0e-2f1de0c0ffee', id: 0xf00d, host }) as unknown as Record<string, unknown>;
  const methods: Array<[string, Record<string, unknown>]> = [
    ['get_host_uptime', {}],
    ['get_console_output', { instance, tail_length: 10 }],
    ['get_diagnostics', { instance }],
    ['get_instance_diagnostics', { instance }],
    ['get_vnc_console', { instance, console_type: 'novnc' }],
  ];
  const [name, args] = methods[method % methods.length] as [string, Record<string, unknown>];
  return { method: name, args, version: '6.0', _timeout: null, _unique_id: hex(), ...contextToMessage({ requestId: `req-${randomUUID()}` }) };
}

// '/'-separated: Nova's keys contain dots (nova_object.data).
const MUTABLE_PATHS = ['method', 'args', 'version', 'namespace', '_unique_id', '_timeout', '_context_user_id', '_context_is_admin', '_context_roles', 'args/instance', 'args/instance/nova_object.data', 'args/instance/nova_object.data/uuid', 'args/instance/nova_object.version', 'args/tail_length', 'args/console_type'];

function setPath(msg: Record<string, unknown>, p: string, value: unknown, del = false): void {
  const parts = p.split('/');
  let cur: Record<string, unknown> = msg;
  for (const key of parts.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) return;
    cur = next as Record<string, unknown>;
  }
  const last = parts[parts.length - 1] as string;
  if (del) delete cur[last];
  else cur[last] = value;
}

/** Nested arrays and objects as JSON text: built as a string, since JSON.stringify itself recurses. */
function deepJson(depth: number): string {
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    open += i % 2 === 0 ? '[' : '{"d":';
    close = (i % 2 === 0 ? ']' : '}') + close;
  }
  return `${open}1${close}`;
}

/** The arbitrary: a kind, a base call and the mutation's parameters. */
// NovaObject fields a driver could turn into a path or a name, and what to put there.
const OBJECT_FIELDS = ['uuid', 'name', 'id', 'display_name', 'hostname', 'host', 'node', 'vm_state', 'power_state', 'task_state', 'project_id'];
const OBJECT_KEYS = ['nova_object.name', 'nova_object.namespace', 'nova_object.version', 'nova_object.changes'];

function hostileObject(msg: Record<string, unknown>, field: string, key: string, value: unknown): void {
  const instance = (msg['args'] as Record<string, unknown> | undefined)?.['instance'] as Record<string, unknown> | undefined;
  if (!instance) {
    (msg['args'] as Record<string, unknown>)['instance'] = value;
    return;
  }
  const data = instance['nova_object.data'] as Record<string, unknown>;
  data[field] = value;
  if (typeof value === 'string') instance[key] = value;
}

function caseArbitrary(host: string, replyQ: string, traversals: string[]): fc.Arbitrary<{ kind: MutationKind; label: string; build: () => { body: Buffer; msgId: string } }> {
  const kinds: MutationKind[] = ['wrong-type', 'missing-key', 'extra-keys', 'deep-nesting', 'huge-string', 'huge-array', 'invalid-utf8', 'wrong-oslo-version', 'inner-not-json', 'non-json', 'binary', 'hostile-object', 'hostile-object'];
  const hostileValue = fc.oneof(
    { arbitrary: fc.constantFrom(...(traversals.length > 0 ? traversals : ['../x'])), weight: 4 },
    { arbitrary: fc.constantFrom(-1, 0, 2 ** 53, 2 ** 31, 1.5, 1e308, -0, 0xffffffff + 1, '0xf00d', '1e3', 'instance-0000f00d', ''), weight: 2 },
    { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
  );
  return fc
    .record({
      kind: fc.constantFrom(...kinds),
      method: fc.nat(),
      path: fc.constantFrom(...MUTABLE_PATHS),
      value: fc.jsonValue({ maxDepth: 3 }),
      extra: fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 8 }),
      depth: fc.integer({ min: 50, max: 20_000 }),
      // Mostly large, now and then beyond the 1 MiB body limit (dropped unanswered: nobody can be told).
      size: fc.oneof({ arbitrary: fc.integer({ min: 1_000, max: 64_000 }), weight: 20 }, { arbitrary: fc.integer({ min: 64_000, max: 1_500_000 }), weight: 1 }),
      bytes: fc.uint8Array({ minLength: 0, maxLength: 2048 }),
      cut: fc.nat(),
      version: fc.oneof(fc.constantFrom('1.0', '3.0', '', '2', 'x.y'), fc.integer(), fc.constant(null)),
      field: fc.constantFrom(...OBJECT_FIELDS),
      objectKey: fc.constantFrom(...OBJECT_KEYS),
      hostile: hostileValue,
    })
    .map((p) => ({
      kind: p.kind,
      label: `${p.kind} ${p.kind === 'hostile-object' ? `${p.field}=${JSON.stringify(p.hostile).slice(0, 60)}` : p.path} (${p.method % 5})`,
      build: () => {
        const msgId = hex();
        const msg: Record<string, unknown> = { ...baseMessage(p.method, host), _msg_id: msgId, _reply_q: replyQ };
        let body: Buffer;
        switch (p.kind) {
          case 'wrong-type':
            setPath(msg, p.path, p.value);
            body = encodeEnvelope(msg);
            break;
          case 'missing-key':
            setPath(msg, p.path, undefined, true);
            body = encodeEnvelope(msg);
            break;
          case 'extra-keys':
            Object.assign(msg.args as object, p.extra);
            for (const [k, v] of Object.entries(p.extra)) if (!k.startsWith('_')) msg[`x_${k}`] = v;
            body = encodeEnvelope(msg);
            break;
          case 'deep-nesting':
            setPath(msg, p.path.startsWith('args/') ? p.path : 'args/nested', '__DEEP__');
            body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(msg).replace('"__DEEP__"', deepJson(p.depth)) }));
            break;
          case 'huge-string':
            setPath(msg, p.path, 'A'.repeat(p.size));
            body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(msg) }));
            break;
          case 'huge-array':
            setPath(msg, p.path.startsWith('args') ? p.path : 'args/list', Array.from({ length: Math.floor(p.size / 4) }, (_, i) => i));
            body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(msg) }));
            break;
          case 'invalid-utf8': {
            const valid = encodeEnvelope(msg);
            const at = p.cut % Math.max(1, valid.length);
            body = Buffer.concat([valid.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]), valid.subarray(at)]);
            break;
          }
          case 'wrong-oslo-version':
            body = Buffer.from(JSON.stringify({ 'oslo.version': p.version, 'oslo.message': JSON.stringify(msg) }));
            break;
          case 'inner-not-json':
            body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(msg).slice(0, p.cut % 400) }));
            break;
          case 'non-json':
            body = Buffer.from(encodeEnvelope(msg).toString('latin1').slice(0, p.cut % 300) + '}}{"', 'latin1');
            break;
          case 'binary':
            body = Buffer.from(p.bytes);
            break;
          case 'hostile-object':
            hostileObject(msg, p.field, p.objectKey, p.hostile);
            body = encodeEnvelope(msg);
            break;
        }
        return { body, msgId };
      },
    }));
}

/** Would the server know where to answer? (decodable with our reply target, or sniffable as the server does.) */
function answerable(body: Buffer, msgId: string, replyQ: string): boolean {
  try {
    const inner = decodeEnvelope(body);
    if (inner['_msg_id'] === msgId && inner['_reply_q'] === replyQ) return true;
  } catch {
    // fall through to sniffing, as the server does for undecodable bodies
  }
  const t = sniffReplyTarget(body);
  return t?.msgId === msgId && t.replyQ === replyQ;
}

export interface FuzzResult {
  seed: number;
  sent: number;
  byKind: Record<string, number>;
  expectedReplies: number;
  replies: number;
  malformedReplies: number;
  missingReplies: number;
  failures: number;
  successes: number;
  seconds: number;
  /** Each message with when it was published and when its answer came (= published when none is expected). */
  timed: TimedInput[];
  /** Answers whose text contained `secret`. */
  leaks: string[];
}

/**
 * Publishes `count` fuzzed messages (seeded) to `compute.<host>` on `exchange`, at most `window` unanswered
 * at a time, and collects the replies on a queue of its own.
 */
export async function runFuzz(opts: {
  amqpUrl: string;
  exchange: string;
  host: string;
  count: number;
  seed: number;
  window?: number;
  replyTimeoutMs?: number;
  onProgress?: (sent: number) => void;
  /** Path-like values the hostile-object mutations put in NovaObject fields. */
  traversals?: string[];
  /** Text no answer may contain (a canary file's content). */
  secret?: string;
}): Promise<FuzzResult> {
  const conn = await connect(opts.amqpUrl);
  const ch = await conn.createConfirmChannel();
  const replyQ = `reply_fuzz_${hex()}`;
  await ch.assertQueue(replyQ, { exclusive: true, autoDelete: true });
  const waiting = new Map<string, (ok: boolean) => void>();
  const result: FuzzResult = { seed: opts.seed, sent: 0, byKind: {}, expectedReplies: 0, replies: 0, malformedReplies: 0, missingReplies: 0, failures: 0, successes: 0, seconds: 0, timed: [], leaks: [] };
  await ch.consume(
    replyQ,
    (m: ConsumeMessage | null) => {
      if (!m) return;
      result.replies++;
      if (opts.secret && m.content.toString('latin1').includes(opts.secret)) result.leaks.push(m.content.toString('latin1').slice(0, 200));
      let wellFormed = false;
      let msgId: unknown;
      try {
        const inner = decodeEnvelope(m.content);
        msgId = inner['_msg_id'];
        const failure = inner['failure'];
        wellFormed = inner['ending'] === true && (failure === null || (typeof failure === 'string' && typeof (JSON.parse(failure) as { class?: unknown }).class === 'string'));
        if (failure === null) result.successes++;
        else result.failures++;
      } catch {
        // not decodable: counted as malformed below
      }
      if (!wellFormed) result.malformedReplies++;
      const w = typeof msgId === 'string' ? waiting.get(msgId) : undefined;
      if (w) {
        waiting.delete(msgId as string);
        w(true);
      }
    },
    { noAck: true },
  );
  const window = opts.window ?? 100;
  const replyTimeoutMs = opts.replyTimeoutMs ?? 20_000;
  const inflight = new Set<Promise<void>>();
  const t0 = Date.now();
  const arb = caseArbitrary(opts.host, replyQ, opts.traversals ?? []);
  const chunk = 500;
  for (let base = 0; base < opts.count; base += chunk) {
    const cases = fc.sample(arb, { seed: opts.seed + base, numRuns: Math.min(chunk, opts.count - base) });
    for (const c of cases) {
      const { body, msgId } = c.build();
      result.byKind[c.kind] = (result.byKind[c.kind] ?? 0) + 1;
      result.sent++;
      const expect = answerable(body, msgId, replyQ);
      const timed: TimedInput = { label: `#${result.sent - 1} ${c.label}, ${body.length} B`, start: Date.now(), end: Date.now() };
      result.timed.push(timed);
      if (expect) {
        result.expectedReplies++;
        const p = new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            if (waiting.delete(msgId)) result.missingReplies++;
            resolve();
          }, replyTimeoutMs);
          waiting.set(msgId, () => {
            timed.end = Date.now();
            clearTimeout(timer);
            resolve();
          });
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await new Promise<void>((resolve, reject) =>
        ch.publish(opts.exchange, `compute.${opts.host}`, body, { contentType: 'application/json', deliveryMode: 1, expiration: String(replyTimeoutMs) }, (err: unknown) => (err ? reject(err as Error) : resolve())),
      );
      while (inflight.size >= window) await Promise.race(inflight);
    }
    opts.onProgress?.(result.sent);
  }
  await Promise.all(inflight);
  result.seconds = (Date.now() - t0) / 1000;
  await conn.close().catch(() => undefined);
  return result;
}
