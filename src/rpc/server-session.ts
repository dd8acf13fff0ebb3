// The server's channels and what it does on them: one session is a consume channel and a confirm channel
// for replies, opened together and closed together. A reply is published on the session its call came in
// on, and the call is acked only once the broker confirmed the reply (else requeued), exactly once.

import { randomUUID } from 'node:crypto';
import { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Message } from 'amqplib';
import { type Logger } from '../logging.js';
import { openChannelPair, withTimeout } from './amqp-connection.js';
import { encodeEnvelopeText, pyJsonDumps, pyJsonString } from './envelope.js';
import { type ReplyTarget } from './message.js';
import { declareServerTopology, type ServerTopology } from './topology.js';

export interface Session {
  consumeCh: Channel;
  replyCh: ConfirmChannel;
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
  /** A channel of the session closed. */
  onLost: (s: Session) => void;
}

/** Opens both channels, declares the topology and consumes the topic, server and fanout queues. */
export async function openSession(model: ChannelModel, o: SessionSetup): Promise<Session> {
  const t = o.opTimeoutMs;
  const { plain: consumeCh, confirm: replyCh } = await openChannelPair(model, t);
  const s: Session = { consumeCh, replyCh, consumerTags: [], alive: true };
  for (const ch of [consumeCh, replyCh]) {
    ch.on('error', (err: Error) => o.log.warn({ err: err.message }, 'RPC server channel error'));
    ch.on('close', () => o.onLost(s));
  }
  replyCh.on('return', (m: Message) => o.log.warn({ replyQ: m.fields.routingKey }, 'reply queue not found (destination not found); reply dropped'));
  try {
    await withTimeout(declareServerTopology(consumeCh, o.topology, o.topic, o.server), t, 'declaring RPC topology');
    if (o.prefetch > 0) await withTimeout(consumeCh.prefetch(o.prefetch), t, 'basic.qos');
    for (const q of [o.topology.topicQueue.name, o.topology.serverQueue.name, o.topology.fanoutQueue.name]) {
      const ok = await withTimeout(consumeCh.consume(q, (m) => o.onDelivery(s, m), { noAck: false }), t, 'basic.consume');
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
  for (const ch of [s.consumeCh, s.replyCh]) {
    await withTimeout(ch.close(), opTimeoutMs, 'channel close').catch(() => undefined);
  }
}

/** Ack or requeue exactly once, on the channel the message came from (a second ack would close the channel). */
export function settle(d: Delivery, how: 'ack' | 'requeue', log: Logger): void {
  if (d.settled) return;
  d.settled = true;
  if (!d.session.alive) return; // the broker requeues it with the closed channel
  try {
    if (how === 'ack') d.session.consumeCh.ack(d.msg);
    else d.session.consumeCh.nack(d.msg, false, true);
  } catch (err) {
    log.debug({ err: String(err) }, 'settling a delivery failed');
  }
}

export function publishReply(d: Delivery, to: ReplyTarget, fragment: string, log: Logger): void {
  // Reply on the session the call came in on: it is live from its first delivery on (the server's session
  // is set only once every consumer is registered, and a fast handler can finish before that), and its
  // ack must go to the same channel anyway.
  const s = d.session;
  if (!s.alive) {
    // Its channels closed: the broker requeues the call; its redelivery finds the cached reply.
    log.warn({ msgId: to.msgId }, 'no AMQP channel for the reply; the call will be redelivered');
    return;
  }
  const body = encodeEnvelopeText(replyMessageText(fragment, to.msgId));
  try {
    s.replyCh.publish('', to.replyQ, body, REPLY_PROPS, (err: unknown) => {
      if (err) {
        log.warn({ err: String(err), msgId: to.msgId }, 'broker did not confirm the reply; requeueing the call');
        settle(d, 'requeue', log);
      } else {
        settle(d, 'ack', log);
      }
    });
  } catch (err) {
    log.warn({ err: String(err), msgId: to.msgId }, 'reply publish failed; requeueing the call');
    settle(d, 'requeue', log);
  }
}
