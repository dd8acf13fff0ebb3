// The bridge against an in-process TCP peer (the "guest") and a real WebSocket pair: bytes arrive intact
// both ways, a slow side pauses the fast one instead of piling bytes up, and closing one side closes both.

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ConsoleBridge, type BridgeOptions } from '../../../src/consoleproxy/bridge.js';

interface Rig {
  client: WebSocket;
  guest: net.Socket;
  proxyTcp: net.Socket;
  bridge: ConsoleBridge;
  close(): Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) await r.close();
});

async function rig(opts: BridgeOptions = {}, guestHalfOpen = false): Promise<Rig> {
  let guestResolve!: (s: net.Socket) => void;
  const guestP = new Promise<net.Socket>((r) => (guestResolve = r));
  const guestServer = net.createServer({ allowHalfOpen: guestHalfOpen }, (s) => guestResolve(s));
  await new Promise<void>((r) => guestServer.listen(0, '127.0.0.1', r));
  const guestPort = (guestServer.address() as AddressInfo).port;

  const http1 = http.createServer();
  const wss = new WebSocketServer({ server: http1 });
  let bridgeResolve!: (v: { bridge: ConsoleBridge; tcp: net.Socket }) => void;
  const bridgeP = new Promise<{ bridge: ConsoleBridge; tcp: net.Socket }>((r) => (bridgeResolve = r));
  wss.on('connection', (ws) => {
    const tcp = net.connect(guestPort, '127.0.0.1', () => bridgeResolve({ bridge: new ConsoleBridge(ws, tcp, opts), tcp }));
  });
  await new Promise<void>((r) => http1.listen(0, '127.0.0.1', r));
  const client = new WebSocket(`ws://127.0.0.1:${(http1.address() as AddressInfo).port}/`);
  await new Promise((r, j) => client.once('open', r).once('error', j));
  const { bridge, tcp } = await bridgeP;
  const guest = await guestP;
  const r: Rig = {
    client,
    guest,
    proxyTcp: tcp,
    bridge,
    close: async () => {
      client.terminate();
      guest.destroy();
      tcp.destroy();
      wss.close();
      http1.closeAllConnections();
      await new Promise((res) => http1.close(res));
      await new Promise((res) => guestServer.close(res));
    },
  };
  rigs.push(r);
  return r;
}

function sha(bufs: Buffer[]): string {
  const h = createHash('sha256');
  for (const b of bufs) h.update(b);
  return h.digest('hex');
}

async function writeAll(sock: net.Socket, chunks: Buffer[], progress: { written: number }): Promise<void> {
  for (const c of chunks) {
    progress.written += c.length;
    if (!sock.write(c)) await new Promise((r) => sock.once('drain', r));
  }
}

describe('ConsoleBridge', () => {
  it('carries bytes both ways unchanged', async () => {
    const r = await rig();
    const fromGuest: Buffer[] = [];
    r.client.on('message', (d: Buffer) => fromGuest.push(d));
    const toClient = randomBytes(200_000);
    r.guest.write(toClient);
    const toGuest = randomBytes(150_000);
    const gotGuest: Buffer[] = [];
    r.guest.on('data', (d: Buffer) => gotGuest.push(d));
    r.client.send(toGuest.subarray(0, 70_000));
    r.client.send(toGuest.subarray(70_000));
    await expect.poll(() => Buffer.concat(fromGuest).length, { timeout: 5000 }).toBe(toClient.length);
    await expect.poll(() => Buffer.concat(gotGuest).length, { timeout: 5000 }).toBe(toGuest.length);
    expect(Buffer.concat(fromGuest).equals(toClient)).toBe(true);
    expect(Buffer.concat(gotGuest).equals(toGuest)).toBe(true);
    const s = r.bridge.snapshot();
    expect(s.bytesToClient).toBe(toClient.length);
    expect(s.bytesToGuest).toBe(toGuest.length);
  });

  it('pauses the guest while the browser does not read, then delivers everything', async () => {
    const high = 256 * 1024;
    const r = await rig({ highWaterMark: high, lowWaterMark: 64 * 1024 });
    r.client.pause(); // a browser that stopped reading
    const chunks = Array.from({ length: 1024 }, () => randomBytes(64 * 1024)); // 64 MiB
    const progress = { written: 0 };
    const writing = writeAll(r.guest, chunks, progress);
    await sleep(1500);
    const stalledAt = progress.written;
    await sleep(500);
    // The guest is blocked: nothing more went out, far less than it wanted to send did, and the
    // proxy's WebSocket queue stayed near its high-water mark (one chunk over at most).
    expect(progress.written).toBe(stalledAt);
    expect(stalledAt).toBeLessThan(48 * 1024 * 1024);
    const s = r.bridge.snapshot();
    expect(s.guestPauses).toBeGreaterThan(0);
    expect(s.maxBufferedAmount).toBeLessThanOrEqual(high + 64 * 1024 + 16);

    const got: Buffer[] = [];
    let n = 0;
    r.client.on('message', (d: Buffer) => {
      got.push(d);
      n += d.length;
    });
    r.client.resume();
    await writing;
    await expect.poll(() => n, { timeout: 30_000 }).toBe(64 * 1024 * 1024);
    expect(sha(got)).toBe(sha(chunks));
  }, 60_000);

  it('pauses the browser while the guest does not read, then delivers everything', async () => {
    const r = await rig();
    r.guest.pause(); // a guest that stopped reading
    const chunks = Array.from({ length: 1024 }, () => randomBytes(64 * 1024));
    let sent = 0;
    const sending = (async () => {
      for (const c of chunks) {
        sent += c.length;
        await new Promise<void>((res, rej) => r.client.send(c, (err) => (err ? rej(err) : res())));
      }
    })();
    await sleep(1500);
    const stalledAt = sent;
    await sleep(500);
    expect(sent).toBe(stalledAt);
    expect(stalledAt).toBeLessThan(48 * 1024 * 1024);
    expect(r.bridge.snapshot().clientPauses).toBeGreaterThan(0);
    // What the proxy holds for the guest stays around one socket buffer plus one message.
    expect(r.proxyTcp.writableLength).toBeLessThanOrEqual(r.proxyTcp.writableHighWaterMark + 4 * 64 * 1024);

    const got: Buffer[] = [];
    let n = 0;
    r.guest.on('data', (d: Buffer) => {
      got.push(d);
      n += d.length;
    });
    r.guest.resume();
    await sending;
    await expect.poll(() => n, { timeout: 30_000 }).toBe(64 * 1024 * 1024);
    expect(sha(got)).toBe(sha(chunks));
  }, 60_000);

  it('closes the guest connection when the browser goes away', async () => {
    const r = await rig();
    const guestEnded = new Promise((res) => r.guest.once('end', res));
    r.client.close(1000);
    await guestEnded;
    r.guest.end();
    const s = await r.bridge.closed;
    expect(s.closedBy).toBe('client');
    expect(r.proxyTcp.destroyed).toBe(true);
  });

  it('closes the browser with 1000 when the guest closes, after what the guest sent', async () => {
    const r = await rig();
    const got: Buffer[] = [];
    r.client.on('message', (d: Buffer) => got.push(d));
    const closed = new Promise<number>((res) => r.client.once('close', (code) => res(code)));
    r.guest.end(Buffer.from('RFB 003.008\n'));
    expect(await closed).toBe(1000);
    expect(Buffer.concat(got).toString()).toBe('RFB 003.008\n');
    expect((await r.bridge.closed).closedBy).toBe('guest');
  });

  it('destroys the browser side when the guest connection fails', async () => {
    const r = await rig();
    const closed = new Promise<number>((res) => r.client.once('close', (code) => res(code)));
    r.guest.resetAndDestroy();
    expect([1000, 1011]).toContain(await closed);
    await r.bridge.closed;
  });

  it('refuses text frames with 1003 and closes the guest', async () => {
    const r = await rig();
    const closed = new Promise<number>((res) => r.client.once('close', (code) => res(code)));
    const guestEnded = new Promise((res) => r.guest.once('end', res));
    r.client.send('hello');
    expect(await closed).toBe(1003);
    await guestEnded;
    r.guest.end();
    expect((await r.bridge.closed).error).toBe('client sent a text frame');
  });

  it('close() ends both sides with 1001 for the browser', async () => {
    const r = await rig();
    const closed = new Promise<number>((res) => r.client.once('close', (code) => res(code)));
    const guestEnded = new Promise((res) => r.guest.once('end', res));
    const done = r.bridge.close();
    expect(await closed).toBe(1001);
    await guestEnded;
    r.guest.end();
    expect((await done).closedBy).toBe('proxy');
  });

  it('cuts off a guest that never closes its side after the grace period', async () => {
    const r = await rig({ closeGraceMs: 200 }, true);
    r.client.close(1000);
    const started = Date.now();
    const s = await r.bridge.closed; // the guest keeps its half open and never answers the FIN
    expect(s.closedBy).toBe('client');
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(r.proxyTcp.destroyed).toBe(true);
  });
});
