import { describe, expect, it } from 'vitest';
import { parseTransportUrl } from '../../../src/rpc/amqp-connection.js';
import { queueArguments, queueHomeNodeDown, replyQueueSpec, serverTopology } from '../../../src/rpc/topology.js';

const defaults = { durableQueues: false, quorumQueues: false, transientQueueTtlMs: 1800000 };

describe('topology (spec table)', () => {
  it('declares what oslo declares by default', () => {
    const t = serverTopology('nova', 'compute', 'host1', 'abc', defaults);
    expect(t.exchange).toEqual({ name: 'nova', type: 'topic', options: { durable: false, autoDelete: false } });
    expect(t.topicQueue).toEqual({ name: 'compute', options: { durable: false, autoDelete: false, exclusive: false } });
    expect(t.serverQueue.name).toBe('compute.host1');
    expect(t.fanoutExchange).toEqual({ name: 'compute_fanout', type: 'fanout', options: { durable: false, autoDelete: true } });
    expect(t.fanoutQueue).toEqual({ name: 'compute_fanout_abc', options: { durable: false, autoDelete: false, exclusive: false, arguments: { 'x-expires': 1800000 } } });
    expect(replyQueueSpec('reply_x', defaults).options).toEqual({ durable: false, autoDelete: false, exclusive: false, arguments: { 'x-expires': 1800000 } });
  });

  it('follows amqp_durable_queues and rabbit_quorum_queue for the topic exchange and queues only', () => {
    const d = serverTopology('nova', 'compute', 'h', 'a', { ...defaults, durableQueues: true });
    expect(d.exchange.options.durable).toBe(true);
    expect(d.topicQueue.options.durable).toBe(true);
    expect(d.fanoutQueue.options.durable).toBe(false);
    const q = serverTopology('nova', 'compute', 'h', 'a', { ...defaults, quorumQueues: true });
    expect(q.exchange.options.durable).toBe(true);
    expect(q.serverQueue.options).toEqual({ durable: true, autoDelete: false, exclusive: false, arguments: { 'x-queue-type': 'quorum' } });
    expect(serverTopology('n', 'c', 'h', 'a', { ...defaults, transientQueueTtlMs: 0 }).fanoutQueue.options.arguments).toBeUndefined();
  });
});

describe('queue arguments for a cluster (oslo _get_queue_arguments)', () => {
  it('adds the quorum limits to the quorum topic queues only', () => {
    const q = serverTopology('nova', 'compute', 'h', 'a', { ...defaults, quorumQueues: true, quorumDeliveryLimit: 5, quorumMaxMemoryLength: 100, quorumMaxMemoryBytes: 4096 });
    expect(q.topicQueue.options).toEqual({
      durable: true, autoDelete: false, exclusive: false,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 5, 'x-max-in-memory-length': 100, 'x-max-in-memory-bytes': 4096 },
    });
    expect(q.fanoutQueue.options.arguments).toEqual({ 'x-expires': 1800000 });
  });

  it('puts x-ha-policy: all on every queue under rabbit_ha_queues, the reply queue included', () => {
    const h = serverTopology('nova', 'compute', 'h', 'a', { ...defaults, haQueues: true });
    expect(h.topicQueue.options).toEqual({ durable: false, autoDelete: false, exclusive: false, arguments: { 'x-ha-policy': 'all' } });
    expect(h.serverQueue.options.arguments).toEqual({ 'x-ha-policy': 'all' });
    expect(h.fanoutQueue.options.arguments).toEqual({ 'x-ha-policy': 'all', 'x-expires': 1800000 });
    expect(replyQueueSpec('reply_x', { transientQueueTtlMs: 60000, haQueues: true }).options.arguments).toEqual({ 'x-ha-policy': 'all', 'x-expires': 60000 });
  });

  it('refuses quorum and HA queues together, as oslo does', () => {
    expect(() => queueArguments({ haQueues: true, quorumQueues: true }, { quorum: true, expiresMs: 0 })).toThrow(/not both/);
  });
});

describe('parseTransportUrl', () => {
  it('reads oslo transport URLs, several hosts, vhosts and escaped credentials', () => {
    expect(parseTransportUrl('rabbit://guest:guest@127.0.0.1:5672/')).toEqual([
      { protocol: 'amqp', hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest', vhost: '/' },
    ]);
    const multi = parseTransportUrl('rabbit://u:p%40ss@h1:5673,h2/nova?ssl=1');
    expect(multi).toHaveLength(2);
    expect(multi[0]).toMatchObject({ protocol: 'amqps', hostname: 'h1', port: 5673, password: 'p@ss', vhost: 'nova' });
    expect(multi[1]).toMatchObject({ hostname: 'h2', port: 5671, username: 'u', password: 'p@ss' });
    expect(parseTransportUrl('rabbit://[::1]:5672')[0]).toMatchObject({ hostname: '::1', vhost: '/' });
    expect(() => parseTransportUrl('http://x')).toThrow();
  });
});

describe('queueHomeNodeDown', () => {
  const err = (code: number, message: string) => Object.assign(new Error(message), { code });
  it('recognises RabbitMQ refusing a declare of a queue whose cluster node is down, for that queue only', () => {
    const stopped = err(404, "Operation failed: QueueDeclare; 404 (NOT-FOUND) with message \"NOT_FOUND - queue 'compute_fanout_ab12' in vhost '/' process is stopped by supervisor\"");
    expect(queueHomeNodeDown(stopped, 'compute_fanout_ab12')).toBe(true);
    expect(queueHomeNodeDown(stopped, 'compute_fanout_ab1')).toBe(false);
    expect(queueHomeNodeDown(err(406, "PRECONDITION_FAILED - queue 'compute_fanout_ab12'"), 'compute_fanout_ab12')).toBe(false);
    expect(queueHomeNodeDown(null, 'x')).toBe(false);
  });
});
