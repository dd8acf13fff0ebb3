// The exchanges and queues oslo.messaging's rabbit driver declares, with exactly its flags and arguments:
// RabbitMQ refuses a re-declaration that differs (PRECONDITION_FAILED), which would break every peer sharing
// the queue. Pure specs (unit-tested against the spec table) plus a declare helper.

import { type Channel, type Options } from 'amqplib';

export interface QueueFlags {
  /** amqp_durable_queues: durable topic exchange and topic queues. */
  durableQueues: boolean;
  /** amqp_auto_delete: auto-delete topic exchange and topic queues. */
  autoDelete?: boolean;
  /** rabbit_quorum_queue: topic queues become quorum queues (always durable, never auto-delete). */
  quorumQueues: boolean;
  /** rabbit_transient_queues_ttl in ms: x-expires of fanout and reply queues; 0 = none. */
  transientQueueTtlMs: number;
  /** rabbit_ha_queues: `x-ha-policy: all` on every queue (mirrored queues of RabbitMQ before 3.0). */
  haQueues?: boolean;
  /** rabbit_quorum_delivery_limit, rabbit_quroum_max_memory_length / _bytes (oslo's spelling); 0 = unset. */
  quorumDeliveryLimit?: number;
  quorumMaxMemoryLength?: number;
  quorumMaxMemoryBytes?: number;
}

/** The options that only add queue arguments (rabbit_ha_queues and the quorum limits). */
export type QueueTuning = Pick<QueueFlags, 'haQueues' | 'quorumDeliveryLimit' | 'quorumMaxMemoryLength' | 'quorumMaxMemoryBytes'>;

/**
 * oslo's _get_queue_arguments: `x-ha-policy` for every queue when rabbit_ha_queues is set; for the topic
 * queues under rabbit_quorum_queue `x-queue-type: quorum` and the optional limits; `x-expires` for the
 * transient ones. Both kinds at once is a configuration error in oslo, and here.
 */
export function queueArguments(f: Partial<QueueFlags>, opts: { quorum: boolean; expiresMs: number }): Record<string, unknown> | undefined {
  if (f.haQueues && f.quorumQueues) throw new Error('rabbit_quorum_queue and rabbit_ha_queues are both enabled: a queue is quorum or HA (mirrored), not both');
  const args: Record<string, unknown> = {};
  if (f.haQueues) args['x-ha-policy'] = 'all';
  if (opts.quorum) {
    args['x-queue-type'] = 'quorum';
    if (f.quorumDeliveryLimit) args['x-delivery-limit'] = f.quorumDeliveryLimit;
    if (f.quorumMaxMemoryLength) args['x-max-in-memory-length'] = f.quorumMaxMemoryLength;
    if (f.quorumMaxMemoryBytes) args['x-max-in-memory-bytes'] = f.quorumMaxMemoryBytes;
  }
  if (opts.expiresMs > 0) args['x-expires'] = opts.expiresMs;
  return Object.keys(args).length > 0 ? args : undefined;
}

export interface ExchangeSpec {
  name: string;
  type: 'topic' | 'fanout';
  options: Options.AssertExchange;
}

export interface QueueSpec {
  name: string;
  options: Options.AssertQueue;
}

export function topicExchangeSpec(name: string, f: QueueFlags): ExchangeSpec {
  // oslo: the exchange is as durable as the topic queues, and quorum queues imply durable.
  return { name, type: 'topic', options: { durable: f.durableQueues || f.quorumQueues, autoDelete: f.autoDelete ?? false } };
}

/** The shared `<topic>` queue and the per-host `<topic>.<server>` queue. */
export function topicQueueSpec(name: string, f: QueueFlags): QueueSpec {
  const args = queueArguments(f, { quorum: f.quorumQueues, expiresMs: 0 });
  if (f.quorumQueues) {
    return { name, options: { durable: true, autoDelete: false, exclusive: false, arguments: args } };
  }
  return { name, options: { durable: f.durableQueues, autoDelete: f.autoDelete ?? false, exclusive: false, ...(args ? { arguments: args } : {}) } };
}

export function fanoutExchangeName(topic: string): string {
  return `${topic}_fanout`;
}

export function fanoutExchangeSpec(topic: string): ExchangeSpec {
  return { name: fanoutExchangeName(topic), type: 'fanout', options: { durable: false, autoDelete: true } };
}

type TransientFlags = Pick<QueueFlags, 'transientQueueTtlMs' | 'haQueues'>;

function transientArgs(f: TransientFlags): Record<string, unknown> | undefined {
  return queueArguments({ haQueues: f.haQueues ?? false }, { quorum: false, expiresMs: f.transientQueueTtlMs });
}

/** `<topic>_fanout_<uuid hex>`: one per server process, expiring when nobody consumes it. */
export function fanoutQueueSpec(topic: string, idHex: string, f: TransientFlags): QueueSpec {
  const args = transientArgs(f);
  return { name: `${topic}_fanout_${idHex}`, options: { durable: false, autoDelete: false, exclusive: false, ...(args ? { arguments: args } : {}) } };
}

/** `reply_<uuid hex>` on the default exchange, declared by the caller. */
export function replyQueueSpec(name: string, f: TransientFlags): QueueSpec {
  const args = transientArgs(f);
  return { name, options: { durable: false, autoDelete: false, exclusive: false, ...(args ? { arguments: args } : {}) } };
}

export interface ServerTopology {
  exchange: ExchangeSpec;
  topicQueue: QueueSpec;
  serverQueue: QueueSpec;
  fanoutExchange: ExchangeSpec;
  fanoutQueue: QueueSpec;
}

export function serverTopology(exchange: string, topic: string, server: string, fanoutIdHex: string, f: QueueFlags): ServerTopology {
  return {
    exchange: topicExchangeSpec(exchange, f),
    topicQueue: topicQueueSpec(topic, f),
    serverQueue: topicQueueSpec(`${topic}.${server}`, f),
    fanoutExchange: fanoutExchangeSpec(topic),
    fanoutQueue: fanoutQueueSpec(topic, fanoutIdHex, f),
  };
}

/** Declare and bind a server's exchanges and queues on `ch` (each AMQP round trip bounded by the caller's timeout). */
export async function declareServerTopology(ch: Channel, t: ServerTopology, topic: string, server: string): Promise<void> {
  await ch.assertExchange(t.exchange.name, t.exchange.type, t.exchange.options);
  await ch.assertQueue(t.topicQueue.name, t.topicQueue.options);
  await ch.bindQueue(t.topicQueue.name, t.exchange.name, topic);
  await ch.assertQueue(t.serverQueue.name, t.serverQueue.options);
  await ch.bindQueue(t.serverQueue.name, t.exchange.name, `${topic}.${server}`);
  await ch.assertExchange(t.fanoutExchange.name, t.fanoutExchange.type, t.fanoutExchange.options);
  await ch.assertQueue(t.fanoutQueue.name, t.fanoutQueue.options);
  // A fanout exchange ignores the key; oslo binds with the topic, and so do we.
  await ch.bindQueue(t.fanoutQueue.name, t.fanoutExchange.name, topic);
}

/**
 * A declare refused because the queue's home node is down (RabbitMQ keeps the record of a classic queue
 * whose node was stopped: "NOT_FOUND - queue ... process is stopped by supervisor", or "home node ... is
 * down"). Only a queue under a new name can be declared until that node is back.
 */
export function queueHomeNodeDown(err: unknown, queue: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 404 && typeof e.message === 'string' && e.message.includes(`'${queue}'`);
}
