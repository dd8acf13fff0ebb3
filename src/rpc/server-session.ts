// The server's channel and what it does on it: one session is one channel that consumes the server's
// queues and carries their replies. A call's reply is published on the channel the call came in on, then
// the call is acked there, exactly once. RabbitMQ handles one channel's methods in order, so an ack it has
// processed follows a reply it has already routed; a connection lost between the two leaves the call
// unacked, and its redelivery finds the reply cached (dedupe) and sends it again. A publisher confirm per
// reply would say no more for the transient reply queues oslo callers use, and cost the broker and us a
// round of frames per call (docs/bench.md, amqp_confirm).

import { randomUUID } from 'node:crypto';
import { type Channel, type ChannelModel, type ConsumeMessage, type Message } from 'amqplib';
import { type Logger } from '../logging.js';
import { withTimeout } from './amqp-connection.js';
import { encodeEnvelopeText, pyJsonDumps, pyJsonString } from './envelope.js';
import { type ReplyTarget } from './message.js';
import { declareServerTopology, type ServerTopology } from './topology.js';

export interface Session {
  /** Consumes the server's queues and carries the replies to their calls. */
  ch: Channel;
  consumerTags: string[];
  alive: boolean;
}

/** One message taken from a queue, until it is settled (acked or requeued). */
export interface Delivery {
  session: Session;
  msg: ConsumeMessage;
  settled: boolean;
  t0: number;
  method: string | null;
  kind: 'call' | 'cast' | 'unknown';
}

// The properties oslo puts on a reply (samples/oslo-rabbit-wire.json); mandatory so an unroutable reply comes back.
const REPLY_PROPS = { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0, headers: {}, mandatory: true } as const;

/** `"result": …, "failure": …, "ending": true` — the part of a reply that a duplicate call gets re-sent. */
export function replyFragment(result: unknown, failure: string | null): string {
  return `"result": ${pyJsonDumps(result)}, "failure": ${failure === null ? 'null' : pyJsonString(failure)}, "ending": true`;
}

export function hexId(): string {
  return randomUUID().replaceAll('-', '');
}

/** The decoded reply message (`oslo.message`) for a call, as text. */
export function replyMessageText(fragment: string, msgId: string, uniqueId: string = hexId()): string {
  return `{${fragment}, "_msg_id": ${pyJsonString(msgId)}, "_unique_id": ${pyJsonString(uniqueId)}}`;
}

export interface SessionSetup {
  topology: ServerTopology;
  topic: string;
  server: string;
  prefetch: number;
  opTimeoutMs: number;
  log: Logger;
  onDelivery: (s: Session, msg: ConsumeMessage | null) => void;
  /** The session's channel closed. */
  onLost: (s: Session) => void;
}

/** Opens the channel, declares the topology and consumes the topic, server and fanout queues. */
export async function openSession(model: ChannelModel, o: SessionSetup): Promise<Session> {
  const t = o.opTimeoutMs;
  const ch = await withTimeout(model.createChannel(), t, 'channel open');
  const s: Session = { ch, consumerTags: [], alive: true };
  ch.on('error', (err: Error) => o.log.warn({ err: err.message }, 'RPC server channel error'));
  ch.on('close', () => o.onLost(s));
  ch.on('return', (m: Message) => o.log.warn({ replyQ: m.fields.routingKey }, 'reply queue not found (destination not found); reply dropped'));
  try {
    await withTimeout(declareServerTopology(ch, o.topology, o.topic, o.server), t, 'declaring RPC topology');
    if (o.prefetch > 0) await withTimeout(ch.prefetch(o.prefetch), t, 'basic.qos');
    for (const q of [o.topology.topicQueue.name, o.topology.serverQueue.name, o.topology.fanoutQueue.name]) {
      const ok = await withTimeout(ch.consume(q, (m) => o.onDelivery(s, m), { noAck: false }), t, 'basic.consume');
      s.consumerTags.push(ok.consumerTag);
    }
  } catch (err) {
    s.alive = false;
    await closeSession(s, t);
    throw err;
  }
  return s;
}

export async function closeSession(s: Session, opTimeoutMs: number): Promise<void> {
  s.alive = false;
  await withTimeout(s.ch.close(), opTimeoutMs, 'channel close').catch(() => undefined);
}

/** Ack or requeue exactly once, on the channel the message came from (a second ack would close the channel). */
export function settle(d: Delivery, how: 'ack' | 'requeue', log: Logger): void {
  if (d.settled) return;
  d.settled = true;
  if (!d.session.alive) return; // the broker requeues it with the closed channel
  try {
    if (how === 'ack') d.session.ch.ack(d.msg);
    else d.session.ch.nack(d.msg, false, true);
  } catch (err) {
    log.debug({ err: String(err) }, 'settling a delivery failed');
  }
}

/** The reply to a call, then the call's ack, on the channel the call came in on (see the top of this file). */
export function publishReply(d: Delivery, to: ReplyTarget, fragment: string, log: Logger): void {
  // The session the call came in on is live from its first delivery on (the server's session is set only
  // once every consumer is registered, and a fast handler can finish before that).
  const s = d.session;
  if (!s.alive) {
    // Its channels closed: the broker requeues the call; its redelivery finds the cached reply.
    log.warn({ msgId: to.msgId }, 'no AMQP channel for the reply; the call will be redelivered');
    return;
  }
  const body = encodeEnvelopeText(replyMessageText(fragment, to.msgId));
  try {
    s.ch.publish('', to.replyQ, body, REPLY_PROPS);
    settle(d, 'ack', log);
  } catch (err) {
    log.warn({ err: String(err), msgId: to.msgId }, 'reply publish failed; requeueing the call');
    settle(d, 'requeue', log);
  }
}
