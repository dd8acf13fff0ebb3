// The caller side of the wire (novamon-manage, the REST API, the benchmark): publishes calls and casts as oslo's
// RPCClient does and matches replies by `_msg_id` on one `reply_<uuid hex>` queue per client. A remote failure
// becomes RemoteError, a missing reply MessagingTimeout. The reply queue is re-declared after every reconnect
// and proved to deliver (a probe to itself); one that does not is replaced by a new one. After a call times
// out the channel is replaced, and the reply queue too when the probe does not come back. Calls go out on a
// channel without publisher confirms (a reply confirms a call), casts on a confirm channel.

import { randomUUID } from 'node:crypto';
import { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { type Logger } from '../logging.js';
import { type AmqpConnectionManager, openChannelPair, withTimeout } from './amqp-connection.js';
import { contextToMessage, type RequestContext } from './context.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';
import { parseFailure } from './failure.js';
import { fanoutExchangeName, fanoutExchangeSpec, queueHomeNodeDown, type QueueTuning, replyQueueSpec, topicExchangeSpec } from './topology.js';


export class MessagingTimeout extends Error {
  override readonly name = 'MessagingTimeout';
}

/** Our reply queue was declared and consumed, yet our own probe never came back through it. */
class ReplyQueueUnreachable extends Error {
  constructor(queue: string) {
    super(`reply queue ${queue} does not deliver (its cluster node is down)`);
  }
}

/** Header of the probe the client sends itself through a reply queue re-declared after a reconnect. */
const PROBE_HEADER = 'x-novamon-reply-probe';

export interface RpcTarget {
  topic: string;
  /** Host to address (`<topic>.<server>`); omitted = any server on the shared topic queue. */
  server?: string;
  version: string;
  namespace?: string | null;
  /** Casts only: deliver to every server of the topic. */
  fanout?: boolean;
}

export interface RpcClientOptions {
  connection: AmqpConnectionManager;
  exchange: string;
  /** Default call timeout (rpc_response_timeout). */
  timeoutMs: number;
  logger: Logger;
  /** x-expires of the reply queue (rabbit_transient_queues_ttl); default 30 min. */
  transientQueueTtlMs?: number;
  /** Bound on AMQP round trips (channel open, declare, cast confirm); default 10 s. */
  opTimeoutMs?: number;
  /** Replies above this are dropped (the call then times out); default 64 MiB. */
  maxReplyBytes?: number;
  /** Flags of the topic exchange, which we declare before the first publish as oslo's publisher does. */
  durableQueues?: boolean;
  quorumQueues?: boolean;
  autoDelete?: boolean;
  /** rabbit_ha_queues (x-ha-policy on the reply queue too). */
  queueTuning?: QueueTuning;
}

// oslo's properties for calls and casts (samples/oslo-rabbit-wire.json); calls add `expiration`.
const PUBLISH_PROPS = { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {} } as const;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  /** Result of a pre-oslo-14 result message, kept until its separate `ending` message. */
  result: unknown;
}

interface Session {
  /** The reply queue's consumer, exchange declarations, casts (confirmed) and reply-queue probes. */
  ch: ConfirmChannel;
  /**
   * Calls only, without publisher confirms, as oslo publishes them: the reply is a call's confirmation,
   * and a confirm per call cost RabbitMQ about a tenth of its CPU per call. Calls stay in order with each
   * other; a cast and a call are on different channels and, as with oslo, not ordered with each other.
   */
  callCh: Channel;
  alive: boolean;
  consumerTag: string | null;
  /** Exchanges asserted on this channel; publishing to a missing exchange would close the channel. */
  declared: Map<string, Promise<unknown>>;
  /**
   * Exchanges whose assertion has completed. Until then every publisher awaits the same assertion, so
   * calls made in order while a channel opens are published in that order (the server keeps arrival order
   * for one ordering key); skipping the wait when the assertion was merely started let a later call
   * overtake an earlier one.
   */
  ready: Set<string>;
}

function hexId(): string {
  return randomUUID().replaceAll('-', '');
}

export class RpcClient {
  /** Renamed only when the queue's cluster node is down (see doOpen). */
  replyQueue = `reply_${hexId()}`;
  private readonly log: Logger;
  private readonly pending = new Map<string, Pending>();
  /** Reply-queue probes waiting to come back, by id. */
  private readonly probes = new Map<string, () => void>();
  private sessionsOpened = 0;
  private recovering = false;
  private session: Session | null = null;
  private opening: Promise<Session> | null = null;
  private closed = false;
  private readonly opTimeoutMs: number;
  private readonly maxReplyBytes: number;
  private readonly onConnected = (model: ChannelModel): void => {
    if (this.closed || this.session?.alive) return;
    this.openSession(model).catch((err: unknown) => this.log.warn({ err: String(err) }, 'RPC client could not re-declare its reply queue'));
  };

  constructor(private readonly opts: RpcClientOptions) {
    this.log = opts.logger.child({ component: 'rpc-client', replyQueue: this.replyQueue });
    this.opTimeoutMs = opts.opTimeoutMs ?? 10000;
    this.maxReplyBytes = opts.maxReplyBytes ?? 64 * 1024 * 1024;
    opts.connection.on('connected', this.onConnected);
  }

  /** Call `method` and wait for its reply. Rejects with RemoteError (remote failure) or MessagingTimeout. */
  async call(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<unknown> {
    const timeoutMs = opts?.timeoutMs ?? this.opts.timeoutMs;
    const started = Date.now();
    const s = this.session?.alive ? this.session : await this.getSession(timeoutMs);
    const exchange = this.opts.exchange;
    if (!s.ready.has(exchange)) await this.declareExchange(s, exchange, false, timeoutMs);
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    const msgId = hexId();
    const body = encodeEnvelope({
      method,
      args,
      ...(target.namespace ? { namespace: target.namespace } : {}),
      version: target.version,
      _msg_id: msgId,
      _reply_q: this.replyQueue,
      _timeout: null,
      _unique_id: hexId(),
      ...contextToMessage(ctx),
    });
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msgId);
        reject(new MessagingTimeout(`Timed out waiting for a reply to message ID ${msgId}`));
        this.recoverAfterTimeout(s);
      }, remaining);
      this.pending.set(msgId, { resolve, reject, timer, result: null });
      try {
        // The queue drops the call when nobody took it within the caller's timeout.
        s.callCh.publish(exchange, routingKey(target), body, { ...PUBLISH_PROPS, expiration: String(timeoutMs) });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(msgId);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** Publish a one-way message; resolves when the broker has confirmed it. */
  async cast(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>): Promise<void> {
    const s = this.session?.alive ? this.session : await this.getSession(this.opTimeoutMs);
    const body = encodeEnvelope({
      method,
      args,
      ...(target.namespace ? { namespace: target.namespace } : {}),
      version: target.version,
      _unique_id: hexId(),
      ...contextToMessage(ctx),
    });
    const exchange = target.fanout ? fanoutExchangeName(target.topic) : this.opts.exchange;
    if (!s.ready.has(exchange)) await this.declareExchange(s, exchange, target.fanout === true, this.opTimeoutMs);
    const confirmed = new Promise<void>((resolve, reject) => {
      s.ch.publish(exchange, target.fanout ? target.topic : routingKey(target), body, PUBLISH_PROPS, (err: unknown) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
      );
    });
    await withTimeout(confirmed, this.opTimeoutMs, 'cast confirm');
  }

  /** Reject outstanding calls, delete the reply queue and close the channel. The connection is the owner's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.connection.off('connected', this.onConnected);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`RPC client closed before the reply to message ID ${id}`));
    }
    this.pending.clear();
    await this.opening?.catch(() => undefined);
    const s = this.session;
    this.session = null;
    if (s?.alive) {
      s.alive = false;
      const t = this.opTimeoutMs;
      if (s.consumerTag) await withTimeout(s.ch.cancel(s.consumerTag), t, 'basic.cancel').catch(() => undefined);
      await withTimeout(s.ch.deleteQueue(this.replyQueue), t, 'queue.delete').catch(() => undefined);
      await withTimeout(closeChannels(s), t, 'channel close').catch(() => undefined);
    }
  }

  private async declareExchange(s: Session, name: string, fanout: boolean, timeoutMs: number): Promise<void> {
    let p = s.declared.get(name);
    if (!p) {
      const flags = { durableQueues: this.opts.durableQueues ?? false, quorumQueues: this.opts.quorumQueues ?? false, autoDelete: this.opts.autoDelete ?? false, transientQueueTtlMs: 0 };
      const spec = fanout ? fanoutExchangeSpec(name.replace(/_fanout$/, '')) : topicExchangeSpec(name, flags);
      p = s.ch.assertExchange(spec.name, spec.type, spec.options);
      s.declared.set(name, p);
      p.catch(() => s.declared.delete(name));
    }
    await withTimeout(p, Math.min(timeoutMs, this.opTimeoutMs), `declaring exchange ${name}`);
    s.ready.add(name);
  }

  private async getSession(timeoutMs: number): Promise<Session> {
    if (this.closed) throw new Error('RPC client is closed');
    const model = await this.opts.connection.connect(timeoutMs);
    return this.openSession(model);
  }

  private openSession(model: ChannelModel): Promise<Session> {
    if (this.session?.alive) return Promise.resolve(this.session);
    if (!this.opening) {
      this.opening = this.doOpen(model).finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  private async doOpen(model: ChannelModel): Promise<Session> {
    const t = this.opTimeoutMs;
    const { confirm: ch, plain: callCh } = await openChannelPair(model, t);
    const s: Session = { ch, callCh, alive: true, consumerTag: null, declared: new Map(), ready: new Set() };
    for (const c of [ch, callCh]) {
      c.on('error', (err: Error) => this.log.warn({ err: err.message }, 'RPC client channel error'));
      c.on('close', () => {
        s.alive = false;
        if (this.session === s) this.session = null;
      });
    }
    try {
      const q = replyQueueSpec(this.replyQueue, { transientQueueTtlMs: this.opts.transientQueueTtlMs ?? 1800000, haQueues: this.opts.queueTuning?.haQueues ?? false });
      await withTimeout(ch.assertQueue(q.name, q.options), t, 'declaring the reply queue');
      const ok = await withTimeout(ch.consume(q.name, (m) => this.onReply(m), { noAck: true }), t, 'basic.consume');
      s.consumerTag = ok.consumerTag;
      // After a reconnect, a cluster may still hold the record of our queue on a node that just died:
      // declare and consume then succeed on a queue nothing will ever deliver from. Our own probe tells.
      if (this.sessionsOpened > 0 && !(await this.replyQueueDelivers(ch))) throw new ReplyQueueUnreachable(this.replyQueue);
    } catch (err) {
      s.alive = false;
      await closeChannels(s);
      // Our reply queue lived on a cluster node that is down: replies to calls in flight are lost with it;
      // later calls name a new queue (the next attempt declares it).
      if (err instanceof ReplyQueueUnreachable || queueHomeNodeDown(err, this.replyQueue)) this.renewReplyQueue('unreachable on its cluster node');
      throw err;
    }
    if (this.closed) {
      s.alive = false;
      await closeChannels(s);
      throw new Error('RPC client is closed');
    }
    this.sessionsOpened++;
    this.session = s;
    return s;
  }

  /**
   * After a call published on session `s` timed out: the session is replaced, on the same reply queue when
   * our probe still comes back through it, on a new one when it does not (in a cluster the queue can vanish
   * with its node after we re-declared it). One recovery at a time. A call from a session already replaced
   * (a reconnect, an earlier recovery) says nothing about the current one: after a broker restart, every
   * call it lost times out in turn, and each used to replace the session again, failing the calls racing
   * the close.
   */
  private recoverAfterTimeout(s: Session): void {
    if (this.recovering || this.closed || !s.alive || this.session !== s) return;
    this.recovering = true;
    this.replyQueueDelivers(s.ch)
      .then((delivers) => {
        if (!s.alive || this.session !== s) return;
        if (delivers) {
          // Replies reach us, yet the call got none: the channel's requests may be what is stuck (after a
          // cluster node was killed, a new channel's publishes to a quorum queue were seen to vanish while
          // other channels' went through). Later calls get a fresh channel on the same reply queue.
          this.log.warn('a call timed out while our reply queue delivers; opening a new channel');
        } else {
          this.renewReplyQueue('stopped delivering');
        }
        // Later calls wait for the new session; the old channels stay open until it consumes (replies to
        // calls still in flight wait in the reply queue for either consumer), so a call that took the old
        // session just before the switch is not failed by a closing channel.
        this.session = null;
        this.getSession(this.opTimeoutMs)
          .catch((err: unknown) => this.log.warn({ err: String(err) }, 'RPC client could not reopen its channel'))
          .finally(() => {
            s.alive = false;
            void closeChannels(s);
          });
      })
      .catch(() => undefined)
      .finally(() => {
        this.recovering = false;
      });
  }

  /** Later calls name a new reply queue (declared by the next session). */
  private renewReplyQueue(why: string): void {
    const previous = this.replyQueue;
    this.replyQueue = `reply_${hexId()}`;
    this.log.warn({ previous, replyQueue: this.replyQueue }, `reply queue ${why}; using a new one`);
  }

  /** Publishes a probe to our own reply queue and waits (at most 2 s) for it to come back. */
  private async replyQueueDelivers(ch: ConfirmChannel): Promise<boolean> {
    const id = hexId();
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.min(2000, this.opTimeoutMs));
      this.probes.set(id, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    try {
      ch.publish('', this.replyQueue, Buffer.from('{}'), { headers: { [PROBE_HEADER]: id } });
      return await seen;
    } finally {
      this.probes.delete(id);
    }
  }

  private onReply(m: ConsumeMessage | null): void {
    if (m === null) {
      // Reply queue deleted under us: drop the session; the next call declares it again.
      const s = this.session;
      this.session = null;
      if (s?.alive) {
        s.alive = false;
        void closeChannels(s);
      }
      return;
    }
    const probe: unknown = m.properties.headers?.[PROBE_HEADER];
    if (typeof probe === 'string') {
      this.probes.get(probe)?.();
      return;
    }
    let msg: Record<string, unknown>;
    try {
      msg = decodeEnvelope(m.content, { maxBytes: this.maxReplyBytes });
    } catch (err) {
      this.log.warn({ err: String(err) }, 'dropping undecodable RPC reply');
      return;
    }
    const msgId = msg['_msg_id'];
    const p = typeof msgId === 'string' ? this.pending.get(msgId) : undefined;
    if (!p || typeof msgId !== 'string') {
      this.log.debug({ msgId }, 'reply for no waiting call (timed out or duplicate)');
      return;
    }
    const failure = msg['failure'];
    if (failure !== null && failure !== undefined) {
      this.finish(msgId, p);
      p.reject(parseFailure(failure));
      return;
    }
    if (msg['result'] !== undefined && msg['result'] !== null) p.result = msg['result'];
    // oslo >= 14 sends one message with ending: true; older servers send the result, then an ending message.
    if (msg['ending'] === true || !Object.hasOwn(msg, 'ending')) {
      this.finish(msgId, p);
      p.resolve(p.result);
    }
  }

  private finish(msgId: string, p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(msgId);
  }
}

/** Close both channels of a session; never rejects. */
async function closeChannels(s: Session): Promise<void> {
  await Promise.all([s.ch, s.callCh].map((c) => c.close().catch(() => undefined)));
}

function routingKey(target: RpcTarget): string {
  return target.server ? `${target.topic}.${target.server}` : target.topic;
}
