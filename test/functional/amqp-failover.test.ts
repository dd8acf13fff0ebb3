// transport_url with several hosts, as for a RabbitMQ cluster: the connection manager fails over the way
// oslo and kombu do. A dead host in the list costs one refused connect, not a retry interval; when the
// connection to one host is lost, the next host is tried at once. Two TCP relays in front of the shared
// broker stand for two cluster nodes, so one "node" can be cut without touching the broker.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { AmqpConnectionManager, parseTransportUrl } from '../../src/rpc/amqp-connection.js';
import { freePort, RABBIT_URL } from '../fixtures/scratch.js';

const broker = parseTransportUrl(RABBIT_URL)[0]!;

/** A TCP relay to the shared broker; `cut()` closes it and every connection through it. */
async function relay(): Promise<{ port: number; connections: () => number; cut: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(broker.port!, broker.hostname!);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => sockets.size,
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

const url = (ports: number[]) => `rabbit://${ports.map((p) => `${broker.username}:${broker.password}@127.0.0.1:${p}`).join(',')}/`;
const managers: AmqpConnectionManager[] = [];
const manager = (transportUrl: string) => {
  // A 5 s retry interval: failing over must not wait for it.
  const m = new AmqpConnectionManager({ transportUrl, logger: silentLogger(), retryIntervalMs: 5000, retryBackoffMs: 0, intervalMaxMs: 5000, connectTimeoutMs: 5000 });
  managers.push(m);
  return m;
};

afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

describe('amqp: failover across the hosts of transport_url', () => {
  it('skips a dead host at once, whatever its place in the list', async () => {
    const dead = await freePort();
    const live = await relay();
    try {
      for (const ports of [[dead, live.port], [dead, live.port], [live.port, dead], [dead, live.port]]) {
        const t0 = Date.now();
        await manager(url(ports)).connect(15_000);
        expect(Date.now() - t0).toBeLessThan(3000);
      }
    } finally {
      await live.cut();
    }
  });

  it('moves to the next host at once when the connection to one is lost', async () => {
    const a = await relay();
    const b = await relay();
    const m = manager(url([a.port, b.port]));
    const first = await m.connect(15_000);
    const [used, other] = a.connections() > 0 ? [a, b] : [b, a];
    expect(used.connections()).toBeGreaterThan(0);
    const t0 = Date.now();
    const lost = new Promise((resolve) => m.once('disconnected', resolve));
    await used.cut();
    await lost;
    const second = await m.whenConnected(15_000);
    expect(second).not.toBe(first);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(other.connections()).toBeGreaterThan(0);
    await other.cut();
  });
});
