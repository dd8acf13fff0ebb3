// The RPC server side of the wire: declares a topic's queues, consumes them, parses every message at the edge,
// dispatches through RpcDispatcher (ordering keys, bounded concurrency, `_unique_id` dedupe) and answers calls
// on the caller's reply queue. A message is acked only after its handler resolved and its reply was confirmed
// by the broker, so a crash or lost connection means redelivery, never a lost call; dedupe keeps that safe.

import { performance } from 'node:perf_hooks';
import { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { NovaException } from '../exception.js';
import { type Logger } from '../logging.js';
import { type AmqpConnectionManager, withTimeout } from './amqp-connection.js';
import { DedupeCache, type DedupeOptions } from './dedupe.js';
import { type RpcDispatcher, type RpcEndpoint } from './dispatcher.js';
import { DEFAULT_MAX_BODY_BYTES, decodeEnvelope } from './envelope.js';
import { MalformedMessage, serializeFailure, WireException } from './failure.js';
import { type IncomingRequest, parseRequest, type ReplyTarget, replyTargetOf, sniffReplyTarget } from './message.js';
import { TaskScheduler } from './scheduler.js';
import { closeSession, type Delivery, hexId, openSession, publishReply, replyFragment, type Session, settle } from './server-session.js';
import { queueHomeNodeDown, serverTopology, type QueueTuning, type ServerTopology } from './topology.js';

export { replyFragment, replyMessageText } from './server-session.js';

export type RpcOutcome = 'ok' | 'failure' | 'malformed' | 'duplicate' | 'requeued';

export interface RpcServerMetric {
  method: string | null;
  kind: 'call' | 'cast' | 'unknown';
  outcome: RpcOutcome;
  /** From delivery to reply published (or handler done, for casts). */
  durationMs: number;
}

export interface RpcServerOptions {
  connection: AmqpConnectionManager;
  exchange: string;
  topic: string;
  server: string;
  dispatcher: RpcDispatcher;
  /** AMQP prefetch per queue consumer and the bound on handlers running at once; 0 = unbounded. */
  prefetch: number;
  durableQueues: boolean;
  quorumQueues: boolean;
  /** rabbit_ha_queues and the quorum queue limits. */
  queueTuning?: QueueTuning;
  /** x-expires of the fanout queue; 0 = none. */
  transientQueueTtlMs: number;
  logger: Logger;
  onMetrics?: (m: RpcServerMetric) => void;
  autoDelete?: boolean;
  /** Bodies above this are dropped (or answered with a failure); default 1 MiB. */
  maxBodyBytes?: number;
  dedupe?: DedupeOptions;
  /** stop() waits this long for running handlers; default 30 s. */
  drainTimeoutMs?: number;
  /** Bound on each AMQP round trip (declare, consume, cancel, close); default 10 s. */
  opTimeoutMs?: number;
}

export class RpcServer {
  private readonly log: Logger;
  private topology: ServerTopology;
  private readonly dedupe: DedupeCache;
  private readonly scheduler: TaskScheduler;
  private readonly maxBodyBytes: number;
  private readonly drainTimeoutMs: number;
  private readonly opTimeoutMs: number;
  private session: Session | null = null;
  private opening: Promise<void> | null = null;
  private reopenTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopping = false;
  private inflight = 0;
  private drained: Array<() => void> = [];
  private readonly onConnected = (model: ChannelModel): void => {
    if (!this.started || this.stopping) return;
    // Logged on every reconnect too: how an operator (and the cluster test) sees consumption resume.
    this.ensureSession(model).then(() => this.log.info({ queues: this.queues }, 'RPC server consuming'), (err: unknown) => {
      this.log.error({ err: String(err) }, 'RPC server could not re-declare its queues; retrying');
      this.scheduleReopen();
    });
  };

  constructor(private readonly opts: RpcServerOptions) {
    this.log = opts.logger.child({ component: 'rpc-server', topic: opts.topic, server: opts.server });
    this.topology = this.newTopology();
    this.dedupe = new DedupeCache(opts.dedupe);
    this.scheduler = new TaskScheduler(opts.prefetch);
    this.maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? 30000;
    this.opTimeoutMs = opts.opTimeoutMs ?? 10000;
  }

  /** Names of the queues this server consumes (topic, topic.server, fanout). */
  get queues(): { topic: string; server: string; fanout: string; fanoutExchange: string } {
    const t = this.topology;
    return { topic: t.topicQueue.name, server: t.serverQueue.name, fanout: t.fanoutQueue.name, fanoutExchange: t.fanoutExchange.name };
  }

  /** Handlers currently running or waiting for their turn. */
  get inFlight(): number {
    return this.inflight;
  }

  /** Declare the topology and start consuming; rejects if the broker refuses it (e.g. PRECONDITION_FAILED). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopping = false;
    this.opts.connection.on('connected', this.onConnected);
    const model = await this.opts.connection.connect(this.opTimeoutMs * 3);
    await this.ensureSession(model);
    this.log.info({ queues: this.queues }, 'RPC server consuming');
  }

  /** Stop consuming, let running handlers finish and reply (bounded), then close; unacked messages are redelivered. */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.opts.connection.off('connected', this.onConnected);
    clearTimeout(this.reopenTimer);
    await this.opening?.catch(() => undefined);
    const s = this.session;
    if (s?.alive) {
      for (const tag of s.consumerTags) {
        await withTimeout(s.ch.cancel(tag), this.opTimeoutMs, 'basic.cancel').catch((err: unknown) => this.log.warn({ err: String(err) }, 'cancel failed'));
      }
    }
    if (this.inflight > 0) {
      const drained = new Promise<void>((r) => this.drained.push(r));
      await withTimeout(drained, this.drainTimeoutMs, 'draining RPC handlers').catch(() =>
        this.log.warn({ inflight: this.inflight }, 'RPC handlers still running at stop; their messages will be redelivered'),
      );
    }
    this.session = null;
    if (s) await closeSession(s, this.opTimeoutMs);
    this.started = false;
    this.log.info('RPC server stopped');
  }

  private ensureSession(model: ChannelModel): Promise<void> {
    if (this.session?.alive) return Promise.resolve();
    if (!this.opening) {
      this.opening = this.openSession(model).finally(() => {
        this.opening = null;
      });
    }
    return this.opening;
  }

  /** The server's queues; the fanout queue, ours alone, gets a fresh name each time this is built. */
  private newTopology(): ServerTopology {
    const o = this.opts;
    const flags = { durableQueues: o.durableQueues, autoDelete: o.autoDelete ?? false, quorumQueues: o.quorumQueues, transientQueueTtlMs: o.transientQueueTtlMs, ...o.queueTuning };
    return serverTopology(o.exchange, o.topic, o.server, hexId(), flags);
  }

  private async openSession(model: ChannelModel): Promise<void> {
    const s = await openSession(model, {
      topology: this.topology,
      topic: this.opts.topic,
      server: this.opts.server,
      prefetch: this.opts.prefetch,
      opTimeoutMs: this.opTimeoutMs,
      log: this.log,
      onDelivery: (session, msg) => this.onDelivery(session, msg),
      onLost: (session) => this.onSessionLost(session),
    }).catch((err: unknown) => {
      // Our fanout queue lived on a cluster node that is down: consume from a new one (fanout casts sent
      // meanwhile had nowhere to go either way); the shared topic queues keep their names.
      if (queueHomeNodeDown(err, this.topology.fanoutQueue.name)) {
        const previous = this.topology.fanoutQueue.name;
        this.topology = { ...this.topology, fanoutQueue: this.newTopology().fanoutQueue };
        this.log.warn({ previous, fanout: this.topology.fanoutQueue.name }, 'fanout queue unreachable on its cluster node; using a new one');
      }
      throw err;
    });
    if (this.stopping) {
      await closeSession(s, this.opTimeoutMs);
      return;
    }
    this.session = s;
  }

  /** A channel closed under us: the connection manager handles a lost connection; a lone channel we reopen here. */
  private onSessionLost(s: Session): void {
    const wasAlive = s.alive;
    s.alive = false;
    if (this.session === s) this.session = null;
    if (!wasAlive || this.stopping || !this.started) return;
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    clearTimeout(this.reopenTimer);
    this.reopenTimer = setTimeout(() => {
      if (this.stopping || !this.started || this.session?.alive) return;
      const model = this.opts.connection.connection;
      if (!model) return; // the 'connected' event will reopen
      this.ensureSession(model).then(
        () => this.log.info({ queues: this.queues }, 'RPC server consuming'),
        (err: unknown) => {
          this.log.error({ err: String(err) }, 'RPC server could not reopen its channels; retrying');
          this.scheduleReopen();
        },
      );
    }, 1000);
  }

  private onDelivery(s: Session, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled our consumer (queue deleted): declare everything again on fresh channels.
      this.log.warn('RPC consumer cancelled by the broker; re-declaring');
      this.onSessionLost(s);
      return;
    }
    const d: Delivery = { session: s, msg, settled: false, t0: performance.now(), method: null, kind: 'unknown' };
    const req = this.parse(d);
    if (req === null) return;
    d.method = req.method;
    d.kind = req.reply ? 'call' : 'cast';
    if (this.stopping) {
      this.settle(d, 'requeue');
      return;
    }
    if (req.uniqueId !== null && !this.dedupe.begin(req.uniqueId)) {
      this.onDuplicate(d, req, req.uniqueId);
      return;
    }
    let endpoint: RpcEndpoint;
    try {
      endpoint = this.opts.dispatcher.select(req.method, req.version, req.namespace);
    } catch (err) {
      this.complete(d, req, null, err);
      return;
    }
    this.dispatch(d, req, endpoint);
  }

  /** The request in a delivery; null when it is malformed (then already answered with a failure or dropped). */
  private parse(d: Delivery): IncomingRequest | null {
    const msg = d.msg;
    let inner: Record<string, unknown>;
    try {
      inner = decodeEnvelope(msg.content, { maxBytes: this.maxBodyBytes });
    } catch (err) {
      const to = sniffReplyTarget(msg.content);
      this.log.warn({ err: String(err), bytes: msg.content.length, routingKey: msg.fields.routingKey, msgId: to?.msgId }, 'undecodable RPC message');
      if (to) {
        d.kind = 'call';
        this.publishReply(d, to, replyFragment(null, serializeFailure(new MalformedMessage(err instanceof Error ? err.message : 'undecodable body'))));
      } else {
        this.settle(d, 'ack');
      }
      this.metric(d, 'malformed');
      return null;
    }
    const replyTo = replyTargetOf(inner);
    if (replyTo) d.kind = 'call';
    try {
      return parseRequest(inner);
    } catch (err) {
      this.log.warn({ err: String(err), msgId: replyTo?.msgId }, replyTo ? 'malformed RPC call; replying with a failure' : 'dropping malformed RPC cast');
      if (replyTo) this.publishReply(d, replyTo, replyFragment(null, serializeFailure(err)));
      else this.settle(d, 'ack');
      this.metric(d, 'malformed');
      return null;
    }
  }

  /** Runs the handler in its ordering key's turn, within the concurrency bound. */
  private dispatch(d: Delivery, req: IncomingRequest, endpoint: RpcEndpoint): void {
    const key = this.opts.dispatcher.orderingKey(endpoint, req.method, req.args);
    this.inflight++;
    void this.scheduler
      .run(key, async () => {
        if (this.stopping) {
          // Not started before stop(): hand it back to the broker for another server (or our restart).
          if (req.uniqueId !== null) this.dedupe.forget(req.uniqueId);
          this.settle(d, 'requeue');
          this.metric(d, 'requeued');
          return;
        }
        let result: unknown;
        try {
          result = await this.opts.dispatcher.invoke(endpoint, req.method, req.ctx, req.args);
        } catch (err) {
          this.complete(d, req, null, err);
          return;
        }
        this.complete(d, req, result, undefined);
      })
      .finally(() => {
        if (--this.inflight === 0) for (const r of this.drained.splice(0)) r();
      });
  }

  private onDuplicate(d: Delivery, req: IncomingRequest, id: string): void {
    const e = this.dedupe.get(id);
    this.log.info({ uniqueId: id, method: req.method, state: e?.state }, 'duplicate RPC message');
    this.metric(d, 'duplicate');
    const answer = (reply: string | null): void => {
      if (req.reply && reply !== null && !this.stopping) this.publishReply(d, req.reply, reply);
      else this.settle(d, 'ack');
    };
    if (e?.state === 'inflight') e.waiters.push(answer);
    else answer(e?.state === 'done' ? e.reply : null);
  }

  /** Record the outcome, reply to a call then ack it, ack a cast. Never throws. */
  private complete(d: Delivery, req: IncomingRequest, result: unknown, err: unknown): void {
    const failed = err !== undefined;
    if (failed) this.logFailure(req, err);
    let fragment: string | null = null;
    if (req.reply) {
      try {
        fragment = failed ? replyFragment(null, serializeFailure(err)) : replyFragment(result, null);
      } catch (serr) {
        this.log.error({ err: serr, method: req.method }, 'RPC result is not JSON-serialisable');
        fragment = replyFragment(null, serializeFailure(serr));
      }
    }
    if (req.uniqueId !== null) this.dedupe.finish(req.uniqueId, fragment);
    if (req.reply && fragment !== null) this.publishReply(d, req.reply, fragment);
    else this.settle(d, 'ack');
    this.metric(d, failed ? 'failure' : 'ok');
  }

  private logFailure(req: IncomingRequest, err: unknown): void {
    const fields = { method: req.method, requestId: req.ctx.requestId, msgId: req.reply?.msgId };
    if (err instanceof NovaException || err instanceof WireException) {
      this.log.info({ ...fields, exc: `${err.module}.${err.className}`, msg: err.message }, 'RPC method raised');
    } else {
      this.log.error({ ...fields, err }, 'RPC method failed unexpectedly');
    }
  }

  private publishReply(d: Delivery, to: ReplyTarget, fragment: string): void {
    publishReply(d, to, fragment, this.log);
  }

  private settle(d: Delivery, how: 'ack' | 'requeue'): void {
    settle(d, how, this.log);
  }

  private metric(d: Delivery, outcome: RpcOutcome): void {
    if (!this.opts.onMetrics) return;
    try {
      this.opts.onMetrics({ method: d.method, kind: d.kind, outcome, durationMs: performance.now() - d.t0 });
    } catch {
      // a metrics sink must not break message handling
    }
  }
}
