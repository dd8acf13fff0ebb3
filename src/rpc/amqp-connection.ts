// One AMQP connection per process, kept alive: connects with an oslo transport_url, reconnects with oslo's
// backoff (rabbit_retry_interval + n * rabbit_retry_backoff, capped at rabbit_interval_max) plus jitter, and
// emits 'connected' (the amqplib ChannelModel) after every (re)connect so owners re-open channels and
// re-declare topology, which does not survive a broker restart. 'disconnected' (Error) when it is lost.
// With several hosts (a cluster) it fails over as oslo and kombu do: the host list is shuffled once, a
// failed host is followed at once by the next one, and the backoff applies only after a whole round failed.

import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';
import { type Logger } from '../logging.js';
import { coalesceWrites } from '../coalesce-writes.js';

export class AmqpTimeoutError extends Error {
  override readonly name = 'AmqpTimeoutError';
}

/** Race `p` against a timer; the timer never keeps the process alive. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AmqpTimeoutError(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * A channel without and one with publisher confirms, opened together; when the second cannot be opened the
 * first is closed again. The RPC client publishes calls on the plain one and consumes its replies, casts
 * and probes on the confirm one.
 */
export async function openChannelPair(model: ChannelModel, timeoutMs: number): Promise<{ plain: Channel; confirm: ConfirmChannel }> {
  const plain = await withTimeout(model.createChannel(), timeoutMs, 'channel open');
  try {
    return { plain, confirm: await withTimeout(model.createConfirmChannel(), timeoutMs, 'channel open') };
  } catch (err) {
    await plain.close().catch(() => undefined);
    throw err;
  }
}

export interface AmqpConnectionOptions {
  /** oslo transport_url: rabbit://user:pass@host:port[,user:pass@host2:port]/vhost[?ssl=1] */
  transportUrl: string;
  logger: Logger;
  /** heartbeat_timeout_threshold, seconds; 0 disables heartbeats. */
  heartbeatSeconds?: number;
  /** rabbit_retry_interval, ms. */
  retryIntervalMs?: number;
  /** rabbit_retry_backoff, ms added per failed attempt. */
  retryBackoffMs?: number;
  /** rabbit_interval_max, ms. */
  intervalMaxMs?: number;
  /** Bound on one connection attempt (TCP + AMQP handshake). */
  connectTimeoutMs?: number;
  /** Shown in RabbitMQ's connection list. */
  connectionName?: string;
  /** kombu_failover_strategy: after a failure, the next host in order or a random other one. */
  failoverStrategy?: 'round-robin' | 'shuffle';
}

/** Parse an oslo rabbit transport_url into amqplib connect options, one per host. */
export function parseTransportUrl(url: string): Options.Connect[] {
  const m = /^(rabbit|amqp|amqps|kombu\+[a-z]+):\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(url.trim());
  if (!m) throw new Error('transport_url must look like rabbit://user:pass@host:port/vhost');
  const scheme = m[1] ?? 'rabbit';
  const hostsPart = m[2] ?? '';
  const params = new URLSearchParams((m[4] ?? '').slice(1));
  const sslParam = params.get('ssl');
  const tls = scheme === 'amqps' || sslParam === '1' || sslParam === 'true' || sslParam === 'True';
  // oslo: an empty path means the default vhost '/'; otherwise the path after the first '/' is the vhost.
  const vpath = (m[3] ?? '/').slice(1);
  const vhost = vpath === '' ? '/' : decodeURIComponent(vpath);
  const hosts = hostsPart.split(',').filter((h) => h.length > 0);
  if (hosts.length === 0) hosts.push('localhost');
  let lastUser = 'guest';
  let lastPass = 'guest';
  return hosts.map((h) => {
    const at = h.lastIndexOf('@');
    let hostPort = h;
    if (at >= 0) {
      const cred = h.slice(0, at);
      hostPort = h.slice(at + 1);
      const colon = cred.indexOf(':');
      lastUser = decodeURIComponent(colon >= 0 ? cred.slice(0, colon) : cred);
      lastPass = decodeURIComponent(colon >= 0 ? cred.slice(colon + 1) : '');
    }
    let hostname = hostPort;
    let port = tls ? 5671 : 5672;
    const pm = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
    if (pm) {
      hostname = (pm[1] ?? 'localhost').replace(/^\[|\]$/g, '');
      if (pm[2]) port = Number(pm[2]);
    }
    return { protocol: tls ? 'amqps' : 'amqp', hostname: hostname || 'localhost', port, username: lastUser, password: lastPass, vhost };
  });
}

function shuffled<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

export class AmqpConnectionManager extends EventEmitter {
  private model: ChannelModel | null = null;
  private closing = false;
  private started = false;
  /** Whole rounds over the host list that failed in a row (drives the backoff). */
  private attempt = 0;
  /** Hosts that failed in the current round. */
  private failedInRound = 0;
  private hostIndex = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly targets: Options.Connect[];
  private readonly log: Logger;
  private readonly heartbeat: number;
  private readonly retryIntervalMs: number;
  private readonly retryBackoffMs: number;
  private readonly intervalMaxMs: number;
  private readonly connectTimeoutMs: number;

  constructor(private readonly opts: AmqpConnectionOptions) {
    super();
    // oslo shuffles a cluster's hosts so a fleet spreads over the nodes; kombu then goes round-robin.
    this.targets = shuffled(parseTransportUrl(opts.transportUrl));
    this.log = opts.logger.child({ component: 'amqp' });
    this.heartbeat = opts.heartbeatSeconds ?? 60;
    this.retryIntervalMs = opts.retryIntervalMs ?? 1000;
    this.retryBackoffMs = opts.retryBackoffMs ?? 2000;
    this.intervalMaxMs = opts.intervalMaxMs ?? 30000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10000;
    // Owners listen for 'connected'; more than the default 10 is normal (server, client, tests).
    this.setMaxListeners(100);
  }

  get connection(): ChannelModel | null {
    return this.model;
  }

  isConnected(): boolean {
    return this.model !== null;
  }

  /** Start connecting (once) and wait until connected. On timeout the manager keeps retrying in the background. */
  async connect(timeoutMs = 30000): Promise<ChannelModel> {
    if (this.closing) throw new Error('AMQP connection manager is closed');
    if (!this.started) {
      this.started = true;
      void this.tryConnect();
    }
    return this.whenConnected(timeoutMs);
  }

  /** One shared wait for the next (re)connect, however many callers wait on it. */
  private nextConnect: Promise<ChannelModel> | null = null;

  /** Resolve with the live connection, waiting for the next (re)connect up to `timeoutMs`. */
  whenConnected(timeoutMs: number): Promise<ChannelModel> {
    if (this.model) return Promise.resolve(this.model);
    if (this.closing) return Promise.reject(new Error('AMQP connection manager is closed'));
    this.nextConnect ??= new Promise<ChannelModel>((resolve, reject) => {
      const onConnected = (m: ChannelModel) => {
        this.off('closed', onClosed);
        this.nextConnect = null;
        resolve(m);
      };
      const onClosed = () => {
        this.off('connected', onConnected);
        this.nextConnect = null;
        reject(new Error('AMQP connection manager is closed'));
      };
      this.once('connected', onConnected);
      this.once('closed', onClosed);
    });
    return withTimeout(this.nextConnect, timeoutMs, 'waiting for the AMQP connection');
  }

  private nextHost(): void {
    const n = this.targets.length;
    const step = this.opts.failoverStrategy === 'shuffle' && n > 1 ? 1 + Math.floor(Math.random() * (n - 1)) : 1;
    this.hostIndex = (this.hostIndex + step) % n;
  }

  private nextDelayMs(): number {
    const base = Math.min(this.intervalMaxMs, this.retryIntervalMs + this.retryBackoffMs * Math.max(0, this.attempt - 1));
    // +-20% jitter so a fleet restarted by the same broker outage does not reconnect in lockstep.
    return Math.max(0, Math.min(this.intervalMaxMs, base * (0.8 + Math.random() * 0.4)));
  }

  private async tryConnect(): Promise<void> {
    if (this.closing) return;
    const target = this.targets[this.hostIndex % this.targets.length] as Options.Connect;
    const where = `${target.hostname}:${target.port}`;
    let model: ChannelModel | null = null;
    // noDelay: replies are small and latency-bound; Nagle would hold them back for an ACK.
    const attempt = connect(
      { ...target, heartbeat: this.heartbeat },
      { timeout: this.connectTimeoutMs, noDelay: true, clientProperties: { connection_name: this.opts.connectionName ?? 'novamon' } },
    );
    try {
      model = await withTimeout(attempt, this.connectTimeoutMs, `AMQP connect to ${where}`);
    } catch (err) {
      // A late success after our timeout must not leak a connection.
      attempt.then((m) => m.close().catch(() => undefined), () => undefined);
      this.nextHost();
      this.failedInRound++;
      let delay = 0;
      if (this.failedInRound >= this.targets.length) {
        this.failedInRound = 0;
        this.attempt++;
        delay = this.nextDelayMs();
      }
      this.log.warn({ err: String(err), host: where, attempt: this.attempt, retryInMs: Math.round(delay) }, 'AMQP connect failed');
      this.schedule(delay);
      return;
    }
    if (this.closing) {
      await model.close().catch(() => undefined);
      return;
    }
    this.attempt = 0;
    this.failedInRound = 0;
    this.model = model;
    // amqplib writes each frame as its muxer takes it: under load every reply, ack and call would be a
    // write(2) of its own and a TCP segment RabbitMQ reads on its own.
    coalesceWrites((model as unknown as { connection: { stream: Writable } }).connection.stream);
    model.on('error', (err: Error) => this.log.warn({ err: err.message }, 'AMQP connection error'));
    model.on('blocked', (reason: string) => this.log.warn({ reason }, 'AMQP connection blocked by the broker'));
    model.on('unblocked', () => this.log.info('AMQP connection unblocked'));
    model.once('close', (err?: Error) => this.onClose(model as ChannelModel, err));
    this.log.info({ host: where }, 'AMQP connected');
    this.emit('connected', model);
  }

  private schedule(delayMs: number): void {
    if (this.closing) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.tryConnect(), delayMs);
  }

  private onClose(model: ChannelModel, err?: Error): void {
    if (this.model !== model) return;
    this.model = null;
    if (this.closing) return;
    const e = err ?? new Error('AMQP connection closed');
    this.log.warn({ err: e.message }, 'AMQP connection lost; reconnecting');
    this.emit('disconnected', e);
    if (this.targets.length > 1) {
      // A cluster: the node we lost is the least likely to take us back, so the next one is tried at once.
      this.nextHost();
      this.schedule(0);
    } else {
      this.attempt = 1;
      this.schedule(this.nextDelayMs());
    }
  }

  /** Close the connection and stop reconnecting. Owners should close their channels first. */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.retryTimer);
    const m = this.model;
    this.model = null;
    this.emit('closed');
    if (m) await withTimeout(m.close(), timeoutMs, 'closing the AMQP connection').catch((err: unknown) => this.log.warn({ err: String(err) }, 'AMQP close failed'));
  }
}
