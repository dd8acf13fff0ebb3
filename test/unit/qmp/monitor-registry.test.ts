// QmpMonitorRegistry against fake monitors: one shared connection per socket, reconnect on demand,
// the synthesised disconnect event, drop/closeAll and the counters.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { QmpEvent } from '../../../src/qmp/connection.js';
import { QmpConnectError, QmpDisconnectedError, QmpError, QmpTimeoutError } from '../../../src/qmp/errors.js';
import { QmpMonitorRegistry } from '../../../src/qmp/monitor-registry.js';
import { FakeQmpPeer, type FakePeerOptions } from './fake-qmp-peer.js';

const peers: FakeQmpPeer[] = [];
let registry: QmpMonitorRegistry | undefined;

afterEach(async () => {
  await registry?.closeAll();
  registry = undefined;
  await Promise.all(peers.splice(0).map((p) => p.stop()));
});

async function startPeer(opts: FakePeerOptions = {}): Promise<FakeQmpPeer> {
  const peer = await FakeQmpPeer.start(opts);
  peers.push(peer);
  return peer;
}

function newRegistry(commandTimeoutMs = 2000, connectTimeoutMs = 2000): QmpMonitorRegistry {
  registry = new QmpMonitorRegistry({ connectTimeoutMs, commandTimeoutMs });
  return registry;
}

const echo: FakePeerOptions = { onCommand: (cmd, c) => c.reply(cmd, { echo: cmd.arguments?.['n'] }) };

function waitFor<T>(fn: () => T | undefined, ms = 1000): Promise<T> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const v = fn();
      if (v !== undefined) resolve(v);
      else if (Date.now() > until) reject(new Error('condition not met in time'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('QmpMonitorRegistry', () => {
  it('shares one connection among 50 concurrent callers', async () => {
    const peer = await startPeer(echo);
    const reg = newRegistry();
    const results = await Promise.all(Array.from({ length: 50 }, (_, n) => reg.execute<{ echo: number }>(peer.path, 'echo', { n })));
    expect(results.map((r) => r.echo)).toEqual(Array.from({ length: 50 }, (_, n) => n));
    expect(peer.clients).toHaveLength(1);
    expect(peer.clients[0]!.received.filter((c) => c.execute === 'qmp_capabilities')).toHaveLength(1);
    expect(reg.size).toBe(1);
    expect(reg.has(peer.path)).toBe(true);
    expect(reg.stats()).toEqual({ connections: 1, commands: 50, errors: 0, events: 0 });
    const [a, b] = await Promise.all([reg.get(peer.path), reg.get(peer.path)]);
    expect(a).toBe(b);
  });

  it('keeps separate connections per socket', async () => {
    const p1 = await startPeer(echo);
    const p2 = await startPeer(echo);
    const reg = newRegistry();
    await Promise.all([reg.execute(p1.path, 'x'), reg.execute(p2.path, 'x')]);
    expect(reg.size).toBe(2);
    expect(p1.clients).toHaveLength(1);
    expect(p2.clients).toHaveLength(1);
  });

  it('forwards events with the socket they came from', async () => {
    const peer = await startPeer(echo);
    const reg = newRegistry();
    const seen: [string, QmpEvent][] = [];
    const unsubscribe = reg.subscribe((path, e) => seen.push([path, e]));
    await reg.get(peer.path);
    peer.clients[0]!.event('STOP');
    await waitFor(() => (seen.length === 1 ? true : undefined));
    expect(seen[0]![0]).toBe(peer.path);
    expect(seen[0]![1].event).toBe('STOP');
    unsubscribe();
    peer.clients[0]!.event('RESUME');
    await reg.execute(peer.path, 'x'); // the event line precedes this reply, so it has been handled
    expect(seen).toHaveLength(1);
    expect(reg.stats().events).toBe(2);
  });

  it('on an unexpected close: rejects pending, synthesises SHUTDOWN/disconnect, forgets, reconnects on demand', async () => {
    const peer = await startPeer();
    const reg = newRegistry();
    const events: QmpEvent[] = [];
    reg.subscribe((_path, e) => events.push(e));
    const pending = reg.execute(peer.path, 'query-status').catch((e: unknown) => e);
    const client = await peer.client(0);
    await client.nextCommand();
    client.hangUp();
    expect(await pending).toBeInstanceOf(QmpDisconnectedError);
    await waitFor(() => (events.length > 0 ? true : undefined));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'SHUTDOWN', data: { guest: false, reason: 'disconnect' } });
    expect(Math.abs(events[0]!.timestamp.seconds - Date.now() / 1000)).toBeLessThan(5);
    expect(reg.has(peer.path)).toBe(false);
    expect(reg.size).toBe(0);

    const again = reg.execute<string>(peer.path, 'query-status');
    const client2 = await peer.client(1);
    client2.reply(await client2.nextCommand(), 'back');
    await expect(again).resolves.toBe('back');
    expect(reg.has(peer.path)).toBe(true);
    expect(reg.stats()).toMatchObject({ connections: 1, commands: 2, errors: 1 });
  });

  it('drop() closes and forgets without a synthesised event', async () => {
    const peer = await startPeer(echo);
    const reg = newRegistry();
    const events: QmpEvent[] = [];
    reg.subscribe((_p, e) => events.push(e));
    const first = await reg.get(peer.path);
    await reg.drop(peer.path);
    expect(first.closed).toBe(true);
    expect(reg.has(peer.path)).toBe(false);
    await peer.clients[0]!.closed;
    const second = await reg.get(peer.path);
    expect(second).not.toBe(first);
    expect(events).toEqual([]);
    await reg.drop('/nowhere/never.monitor'); // unknown path: no-op
  });

  it('drop() abandons a connect in flight', async () => {
    const peer = await startPeer({ greet: false });
    const reg = newRegistry(2000, 5000);
    const pending = reg.get(peer.path).catch((e: unknown) => e);
    await peer.client(0);
    const started = Date.now();
    await reg.drop(peer.path);
    const err = await pending;
    expect(Date.now() - started).toBeLessThan(200);
    expect(err).toBeInstanceOf(QmpConnectError);
    await peer.clients[0]!.closed;
  });

  it('shares a failed connect among concurrent callers and counts the errors', async () => {
    const peer = await startPeer();
    const reg = newRegistry();
    const missing = join(peer.dir, 'missing.monitor');
    const errs = await Promise.all([reg.execute(missing, 'a'), reg.execute(missing, 'b')].map((p) => p.catch((e: unknown) => e)));
    for (const e of errs) expect(e).toMatchObject({ name: 'QmpConnectError', code: 'ENOENT' });
    expect(errs[0]).toBe(errs[1]);
    expect(reg.stats()).toEqual({ connections: 0, commands: 2, errors: 2, events: 0 });
    expect(reg.has(missing)).toBe(false);
  });

  it('times out a busy monitor (no greeting) with QmpConnectError', async () => {
    const peer = await startPeer({ greet: false });
    const reg = newRegistry(2000, 100);
    await expect(reg.get(peer.path)).rejects.toMatchObject({ name: 'QmpConnectError', code: 'ETIMEDOUT' });
    await peer.clients[0]!.closed;
  });

  it('applies commandTimeoutMs by default and lets a call override it; the connection survives', async () => {
    // QEMU answers in order: a slow command holds back the ones behind it. Each 'hang' outlasts its
    // timeout and is answered well within the liveness ping's (80 ms) that follows.
    let answered = Promise.resolve();
    const hangMs = [120, 60];
    const peer = await startPeer({
      onCommand: (cmd, c) => {
        answered = answered.then(async () => {
          if (cmd.execute === 'hang') await new Promise((r) => setTimeout(r, hangMs.shift()));
          c.reply(cmd, 'ok');
        });
      },
    });
    const reg = newRegistry(80);
    await expect(reg.execute(peer.path, 'hang')).rejects.toMatchObject({ name: 'QmpTimeoutError', timeoutMs: 80 });
    const err = await reg.execute(peer.path, 'hang', undefined, { timeoutMs: 30 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect((err as QmpTimeoutError).timeoutMs).toBe(30);
    await expect(reg.hmp(peer.path, 'info status')).resolves.toBe('ok');
    expect(peer.clients).toHaveLength(1);
    expect(reg.stats()).toMatchObject({ commands: 3, errors: 2 });
  });

  it('passes QEMU errors through', async () => {
    const peer = await startPeer({ onCommand: (cmd, c) => c.fail(cmd, 'GenericError', "Device 'x' not found") });
    const reg = newRegistry();
    const err = await reg.execute(peer.path, 'device_del', { id: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ errorClass: 'GenericError', desc: "Device 'x' not found", command: 'device_del' });
    expect(reg.has(peer.path)).toBe(true);
  });

  it('keeps delivering to other subscribers when one throws', async () => {
    const peer = await startPeer(echo);
    const reg = newRegistry();
    const seen: string[] = [];
    reg.subscribe(() => {
      throw new Error('subscriber bug');
    });
    reg.subscribe((_p, e) => seen.push(e.event));
    await reg.get(peer.path);
    peer.clients[0]!.event('POWERDOWN');
    await reg.execute(peer.path, 'x');
    expect(seen).toEqual(['POWERDOWN']);
  });

  it('closeAll() closes everything without synthesised events, and get() fails afterwards', async () => {
    const p1 = await startPeer(echo);
    const p2 = await startPeer(echo);
    const reg = newRegistry();
    const events: QmpEvent[] = [];
    reg.subscribe((_p, e) => events.push(e));
    await Promise.all([reg.get(p1.path), reg.get(p2.path)]);
    await reg.closeAll();
    expect(reg.size).toBe(0);
    await Promise.all([p1.clients[0]!.closed, p2.clients[0]!.closed]);
    await expect(reg.get(p1.path)).rejects.toBeInstanceOf(QmpDisconnectedError);
    expect(events).toEqual([]);
    expect(p1.clients).toHaveLength(1);
  });
});
