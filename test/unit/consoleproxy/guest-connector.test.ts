// The connector against in-process VNC-like listeners that greet late, never, or only on a second try.

import net, { type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GuestConnector } from '../../../src/consoleproxy/guest-connector.js';

const GREETING = 'RFB 003.008\n';

/** A listener that decides per accepted connection (numbered from 1) when to greet: after ms, or never. */
class ScriptedVnc {
  accepted = 0;
  closedByClient: number[] = [];
  readonly server: net.Server;
  constructor(greetAfter: (n: number) => number | 'never' | 'close', shared: { pending: number; maxPending: number } = { pending: 0, maxPending: 0 }) {
    this.server = net.createServer((s) => {
      const n = ++this.accepted;
      s.on('error', () => undefined);
      s.on('close', () => this.closedByClient.push(n));
      const plan = greetAfter(n);
      if (plan === 'close') return void s.destroy();
      if (plan === 'never') return;
      shared.pending++;
      shared.maxPending = Math.max(shared.maxPending, shared.pending);
      setTimeout(() => {
        shared.pending--;
        s.write(GREETING);
      }, plan);
    });
  }
  async start(): Promise<{ host: string; port: number; internalAccessPath: null }> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return { host: '127.0.0.1', port: (this.server.address() as AddressInfo).port, internalAccessPath: null };
  }
}

const servers: ScriptedVnc[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((v) => new Promise((r) => v.server.close(r))));
});

async function serve(...args: ConstructorParameters<typeof ScriptedVnc>) {
  const vnc = new ScriptedVnc(...args);
  servers.push(vnc);
  return { vnc, target: await vnc.start() };
}

/** The first bytes a socket delivers once someone reads it (as the bridge does). */
function firstBytes(sock: Socket): Promise<string> {
  sockets.push(sock);
  return new Promise((resolve) => {
    sock.once('data', (d: Buffer) => resolve(d.toString()));
    sock.resume();
  });
}

describe('GuestConnector', () => {
  it('dials one VNC server one connection at a time, handing each over with its greeting unread', async () => {
    const shared = { pending: 0, maxPending: 0 };
    const { vnc, target } = await serve(() => 30, shared);
    const connector = new GuestConnector({ timeoutMs: 5000 });
    const socks = await Promise.all(Array.from({ length: 5 }, () => connector.connect(target)));
    expect(await Promise.all(socks.map(firstBytes))).toEqual(Array(5).fill(GREETING));
    expect(vnc.accepted).toBe(5);
    expect(shared.maxPending).toBe(1);
  });

  it('dials different servers side by side', async () => {
    const shared = { pending: 0, maxPending: 0 };
    const a = await serve(() => 200, shared);
    const b = await serve(() => 200, shared);
    const connector = new GuestConnector({ timeoutMs: 5000 });
    const socks = await Promise.all([connector.connect(a.target), connector.connect(b.target)]);
    expect(await Promise.all(socks.map(firstBytes))).toEqual([GREETING, GREETING]);
    expect(shared.maxPending).toBe(2);
  });

  it('drops a connection the server accepted but never greeted on, and dials again', async () => {
    const { vnc, target } = await serve((n) => (n === 1 ? 'never' : 0));
    const connector = new GuestConnector({ timeoutMs: 5000, greetingTimeoutMs: 100 });
    expect(await firstBytes(await connector.connect(target))).toBe(GREETING);
    expect(vnc.accepted).toBe(2);
    await expect.poll(() => vnc.closedByClient).toContain(1);
  });

  it('gives up when the server never greets within the budget', async () => {
    const { vnc, target } = await serve(() => 'never');
    const connector = new GuestConnector({ timeoutMs: 500, greetingTimeoutMs: 100 });
    await expect(connector.connect(target)).rejects.toThrow(/no greeting in 500 ms/);
    expect(vnc.accepted).toBeGreaterThanOrEqual(3);
    await expect.poll(() => vnc.closedByClient.length).toBe(vnc.accepted);
  });

  it('does not redial a server that closes before greeting', async () => {
    const { vnc, target } = await serve(() => 'close');
    const connector = new GuestConnector({ timeoutMs: 5000, greetingTimeoutMs: 100 });
    await expect(connector.connect(target)).rejects.toThrow('closed the connection before greeting');
    expect(vnc.accepted).toBe(1);
  });

  it('lets the next caller dial once a failed one gave up', async () => {
    const { target } = await serve((n) => (n === 1 ? 'close' : 0));
    const connector = new GuestConnector({ timeoutMs: 5000 });
    const [first, second] = await Promise.allSettled([connector.connect(target), connector.connect(target)]);
    expect(first.status).toBe('rejected');
    expect(second.status).toBe('fulfilled');
    if (second.status === 'fulfilled') expect(await firstBytes(second.value)).toBe(GREETING);
  });

  it('does not dial for a request that went away while it waited its turn', async () => {
    const { vnc, target } = await serve(() => 100);
    const connector = new GuestConnector({ timeoutMs: 5000 });
    const gone = new AbortController();
    const first = connector.connect(target);
    const second = connector.connect(target, gone.signal);
    gone.abort();
    expect(await firstBytes(await first)).toBe(GREETING);
    await expect(second).rejects.toThrow('the request went away');
    expect(vnc.accepted).toBe(1);
  });

  it('refuses at once when nothing listens', async () => {
    const { target } = await serve(() => 0);
    await new Promise((r) => servers.pop()?.server.close(r));
    const connector = new GuestConnector({ timeoutMs: 5000 });
    await expect(connector.connect(target)).rejects.toThrow(/ECONNREFUSED/);
  });
});
