// oslo.messaging's Notifier on the wire: what `Notifier._notify` and the messaging drivers send. The
// message is {message_id, publisher_id, event_type, priority, payload, timestamp} plus `_unique_id` and
// the sanitised request context as `_context_*` keys; messagingv2 wraps it in the 2.0 envelope,
// messaging sends it bare. It goes to the control exchange with routing key `<topic>.<priority>`, and
// before the first publish on a connection the queue named like the key is declared and bound, as
// oslo's rabbit driver does, so nothing is lost before a consumer exists. Publishing is ordered and
// fire-and-forget: a failure is logged, never thrown at the caller.

import { randomUUID } from 'node:crypto';
import { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { type Logger } from '../logging.js';
import { type AmqpConnectionManager, withTimeout } from './amqp-connection.js';
import { CONTEXT_PREFIX, type RequestContext } from './context.js';
import { encodeEnvelope, pyJsonDumps } from './envelope.js';
import { type QueueFlags, topicExchangeSpec, topicQueueSpec } from './topology.js';

export type NotificationDriver = 'messagingv2' | 'messaging' | 'noop' | 'log';
export type NotificationPriority = 'INFO' | 'WARN' | 'ERROR' | 'CRITICAL' | 'DEBUG' | 'AUDIT' | 'SAMPLE';

export interface Notification {
  publisherId: string;
  eventType: string;
  priority: NotificationPriority;
  payload: unknown;
}

export interface OsloNotifierOptions {
  connection: AmqpConnectionManager;
  exchange: string;
  drivers: NotificationDriver[];
  topics: string[];
  flags: QueueFlags;
  logger: Logger;
  /** Bound on each AMQP round trip; default 10 s. */
  opTimeoutMs?: number;
  /** Notifications waiting to be published beyond this are dropped (and logged); default 10,000. */
  maxQueued?: number;
}

// oslo's publish properties for every message kind (the same as a cast's).
const PUBLISH_PROPS = { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {} } as const;

/** Python's str(datetime.utcnow()): 'YYYY-MM-DD HH:MM:SS.ffffff' (no fraction when it is zero). */
export function pythonUtcTimestamp(d: Date): string {
  const iso = d.toISOString();
  const base = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  const ms = d.getUTCMilliseconds();
  return ms === 0 ? base : `${base}.${String(ms * 1000).padStart(6, '0')}`;
}

/**
 * The `_context_*` keys of a notification: oslo keeps only a safe subset of the context (no token, no
 * catalog contents) and Nova's RequestContext rebuilt from it serialises every one of its keys again.
 */
export function notificationContext(ctx: RequestContext, now: Date): Record<string, unknown> {
  const raw = ctx.raw;
  const s = (k: string): unknown => (raw[k] === undefined ? null : raw[k]);
  const dash = (v: unknown) => (typeof v === 'string' && v !== '' ? v : '-');
  const user = ctx.userId;
  const project = ctx.projectId;
  const ctxDict: Record<string, unknown> = {
    user,
    project_id: project,
    system_scope: s('system_scope'),
    project,
    domain: s('domain_id') ?? s('domain'),
    user_domain: s('user_domain_id') ?? s('user_domain'),
    project_domain: s('project_domain_id') ?? s('project_domain'),
    is_admin: ctx.isAdmin,
    read_only: false,
    show_deleted: false,
    auth_token: null,
    request_id: ctx.requestId,
    global_request_id: ctx.globalRequestId,
    resource_uuid: null,
    roles: ctx.roles,
    user_identity: [user, project, s('domain_id'), s('user_domain_id'), s('project_domain_id')].map(dash).join(' '),
    is_admin_project: true,
    user_id: user,
    read_deleted: 'no',
    remote_address: null,
    timestamp: now.toISOString().replace('Z', '000').slice(0, 26),
    quota_class: null,
    user_name: s('user_name'),
    service_catalog: [],
    project_name: s('project_name'),
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ctxDict)) out[CONTEXT_PREFIX + k] = v;
  return out;
}

interface Session {
  ch: ConfirmChannel;
  alive: boolean;
  declared: Set<string>;
}

export class OsloNotifier {
  private readonly log: Logger;
  private readonly opTimeoutMs: number;
  private readonly maxQueued: number;
  private readonly sendsOnWire: boolean;
  private session: Session | null = null;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private closed = false;
  private readonly onConnected = (): void => {
    // A new connection: declare the queues again before the next publish (oslo clears its cache too).
    this.session = null;
  };

  constructor(private readonly opts: OsloNotifierOptions) {
    this.log = opts.logger.child({ component: 'notifier' });
    this.opTimeoutMs = opts.opTimeoutMs ?? 10_000;
    this.maxQueued = opts.maxQueued ?? 10_000;
    this.sendsOnWire = opts.drivers.some((d) => d === 'messagingv2' || d === 'messaging');
    opts.connection.on('connected', this.onConnected);
  }

  /** True when some driver sends notifications anywhere (not only noop). */
  get enabled(): boolean {
    return this.opts.drivers.some((d) => d !== 'noop') && this.opts.topics.length > 0;
  }

  /** Queue one notification; published in call order. Never throws. */
  notify(ctx: RequestContext, n: Notification): void {
    if (!this.enabled || this.closed) return;
    if (this.queued >= this.maxQueued) {
      this.log.warn({ event_type: n.eventType, queued: this.queued }, 'notification dropped: too many waiting to be published');
      return;
    }
    const now = new Date();
    const message: Record<string, unknown> = {
      message_id: randomUUID(),
      publisher_id: n.publisherId,
      event_type: n.eventType,
      priority: n.priority,
      payload: n.payload,
      timestamp: pythonUtcTimestamp(now),
      _unique_id: randomUUID().replaceAll('-', ''),
      ...notificationContext(ctx, now),
    };
    if (this.opts.drivers.includes('log')) this.log.info({ notification: message }, 'notification');
    if (!this.sendsOnWire) return;
    this.queued++;
    this.chain = this.chain
      .then(() => this.publishAll(message, n.priority))
      .catch((err: unknown) => this.log.error({ err: String(err), event_type: n.eventType }, 'could not send notification'))
      .finally(() => {
        this.queued--;
      });
  }

  /** Resolves when every queued notification has been published (or has failed). */
  flush(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    await withTimeout(this.flush(), this.opTimeoutMs, 'notification flush').catch((err: unknown) => this.log.warn({ err: String(err) }, 'notifications left unsent at close'));
    this.closed = true;
    this.opts.connection.off('connected', this.onConnected);
    const s = this.session;
    this.session = null;
    if (s?.alive) await withTimeout(s.ch.close(), this.opTimeoutMs, 'channel close').catch(() => undefined);
  }

  private async publishAll(message: Record<string, unknown>, priority: NotificationPriority): Promise<void> {
    const s = await this.channel();
    for (const driver of this.opts.drivers) {
      if (driver !== 'messagingv2' && driver !== 'messaging') continue;
      const body = driver === 'messagingv2' ? encodeEnvelope(message) : Buffer.from(pyJsonDumps(message), 'utf8');
      for (const topic of this.opts.topics) {
        const key = `${topic}.${priority.toLowerCase()}`;
        await this.declareQueue(s, key);
        const confirmed = new Promise<void>((resolve, reject) => {
          s.ch.publish(this.opts.exchange, key, body, PUBLISH_PROPS, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
        });
        await withTimeout(confirmed, this.opTimeoutMs, `publishing to ${key}`);
      }
    }
  }

  private async declareQueue(s: Session, key: string): Promise<void> {
    if (s.declared.has(key)) return;
    const q = topicQueueSpec(key, this.opts.flags);
    await withTimeout(s.ch.assertQueue(q.name, q.options), this.opTimeoutMs, `declaring queue ${key}`);
    await withTimeout(s.ch.bindQueue(q.name, this.opts.exchange, key), this.opTimeoutMs, `binding queue ${key}`);
    s.declared.add(key);
  }

  private async channel(): Promise<Session> {
    if (this.session?.alive) return this.session;
    const model: ChannelModel = await this.opts.connection.connect(this.opTimeoutMs);
    const ch = await withTimeout(model.createConfirmChannel(), this.opTimeoutMs, 'channel open');
    const session: Session = { ch, alive: true, declared: new Set() };
    const dead = () => {
      session.alive = false;
      if (this.session === session) this.session = null;
    };
    ch.on('close', dead);
    ch.on('error', (err: unknown) => {
      this.log.warn({ err: String(err) }, 'notification channel error');
      dead();
    });
    const ex = topicExchangeSpec(this.opts.exchange, this.opts.flags);
    await withTimeout(ch.assertExchange(ex.name, ex.type, ex.options), this.opTimeoutMs, `declaring exchange ${ex.name}`);
    this.session = session;
    return session;
  }
}
