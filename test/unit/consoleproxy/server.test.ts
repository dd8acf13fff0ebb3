// The proxy in process with in-memory token and instance stores, a stand-in port validator and a VNC-like
// TCP listener that counts accepted connections: what is refused never reaches the listener.

import { createHash } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ConsoleAuthorizer, type ConsolePortValidator } from '../../../src/consoleproxy/authorizer.js';
import { allowedOriginHostnames } from '../../../src/consoleproxy/origin.js';
import { ConsoleProxy } from '../../../src/consoleproxy/server.js';
import type { ConsoleAuthTokenRow } from '../../../src/db/console-auth-token-repository.js';
import { silentLogger } from '../../../src/logging.js';

const UUID = '11111111-2222-4333-8444-555555555555';

class MemoryTokens {
  rows = new Map<string, ConsoleAuthTokenRow>();
  add(token: string, fields: Partial<ConsoleAuthTokenRow>): void {
    const hash = createHash('sha256').update(token).digest('hex');
    this.rows.set(hash, {
      id: this.rows.size + 1, tokenHash: hash, consoleType: 'novnc', host: '127.0.0.1', port: 1, internalAccessPath: null,
      instanceUuid: UUID, accessUrlBase: 'http://127.0.0.1:6080/vnc_auto.html', expires: Math.floor(Date.now() / 1000) + 600, createdAt: new Date(),
      ...fields,
    });
  }
  async validate(token: string): Promise<ConsoleAuthTokenRow | null> {
    const row = this.rows.get(createHash('sha256').update(token).digest('hex'));
    return row && row.expires > Date.now() / 1000 ? row : null;
  }
}

class CountingVnc {
  accepted = 0;
  readonly server = net.createServer((s) => {
    this.accepted++;
    s.write('RFB 003.008\n');
    s.on('data', (d) => s.write(d)); // echo after the greeting
    s.on('error', () => undefined);
  });
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    await new Promise((r) => this.server.close(r));
  }
}

let vnc: CountingVnc;
let vncPort: number;
let tokens: MemoryTokens;
let proxy: ConsoleProxy;
let proxyPort: number;
let portValid: boolean;
const validations: Array<{ computeHost: string; port: number; consoleType: string }> = [];

beforeEach(async () => {
  vnc = new CountingVnc();
  vncPort = await vnc.start();
  tokens = new MemoryTokens();
  portValid = true;
  validations.length = 0;
  const ports: ConsolePortValidator = {
    validate: async (req) => {
      validations.push({ computeHost: req.computeHost, port: req.port, consoleType: req.consoleType });
      return portValid;
    },
  };
  const authorizer = new ConsoleAuthorizer(tokens, { getByUuid: async (u) => (u === UUID ? { host: 'compute-a' } : null) }, ports, {
    consoleType: 'novnc',
    allowedOriginHostnames: allowedOriginHostnames('http://127.0.0.1:6080/vnc_auto.html', ['127.0.0.1']),
    baseUrl: 'http://127.0.0.1:6080/vnc_auto.html',
    lookupTimeoutMs: 2000,
  });
  proxy = new ConsoleProxy({ authorizer, logger: silentLogger() });
  proxyPort = (await proxy.listen('127.0.0.1', 0)).port;
});

afterEach(async () => {
  await proxy.close();
  await vnc.stop();
});

/** Opens a WebSocket; resolves with the first bytes received, or rejects with the HTTP status of a refusal. */
function open(path: string, headers: Record<string, string> = {}, port = proxyPort): Promise<{ ws: WebSocket; first: Buffer; protocol: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, ['binary'], { headers });
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`HTTP ${res.statusCode}`));
      res.resume();
    });
    ws.once('error', reject);
    ws.once('message', (d: Buffer) => resolve({ ws, first: d, protocol: ws.protocol }));
  });
}

describe('ConsoleProxy', () => {
  it('bridges a valid token to the guest with the binary subprotocol', async () => {
    tokens.add('good', { port: vncPort });
    const { ws, first, protocol } = await open('/?token=good', { Origin: 'http://127.0.0.1:6080' });
    expect(first.toString()).toBe('RFB 003.008\n');
    expect(protocol).toBe('binary');
    const echoed = new Promise<Buffer>((r) => ws.once('message', (d: Buffer) => r(d)));
    ws.send(Buffer.from('RFB 003.008\n'));
    expect((await echoed).toString()).toBe('RFB 003.008\n');
    expect(vnc.accepted).toBe(1);
    expect(validations).toEqual([{ computeHost: 'compute-a', port: vncPort, consoleType: 'novnc' }]);
    expect(proxy.stats().open).toBe(1);
    ws.close();
    await expect.poll(() => proxy.stats().open).toBe(0);
  });

  it('takes the token in the path= form too', async () => {
    tokens.add('tok2', { port: vncPort });
    const { ws, first } = await open(`/?path=${encodeURIComponent('?token=tok2')}`);
    expect(first.toString()).toBe('RFB 003.008\n');
    ws.close();
  });

  it.each([
    ['no token', '/', {}, 403],
    ['a forged token', '/?token=forged', {}, 403],
    ['an absurd token', `/?token=${'x'.repeat(300)}`, {}, 403],
    ['a bad Origin', '/?token=good', { Origin: 'http://evil.example.com' }, 403],
    ['an https Origin for an http base URL', '/?token=good', { Origin: 'https://127.0.0.1:6080' }, 403],
  ])('refuses %s before touching the guest', async (_what, path, headers, status) => {
    tokens.add('good', { port: vncPort });
    await expect(open(path, headers)).rejects.toThrow(`HTTP ${status}`);
    expect(vnc.accepted).toBe(0);
    expect(proxy.stats().refused).toBe(1);
  });

  it('refuses an expired token', async () => {
    tokens.add('old', { port: vncPort, expires: Math.floor(Date.now() / 1000) - 1 });
    await expect(open('/?token=old')).rejects.toThrow('HTTP 403');
    expect(vnc.accepted).toBe(0);
  });

  it('refuses a token of another console type', async () => {
    tokens.add('serial', { port: vncPort, consoleType: 'serial' });
    await expect(open('/?token=serial')).rejects.toThrow('HTTP 403');
    expect(vnc.accepted).toBe(0);
    expect(validations).toEqual([]);
  });

  it('refuses when the compute host says the port is no longer the guest\'s console', async () => {
    tokens.add('moved', { port: vncPort });
    portValid = false;
    await expect(open('/?token=moved')).rejects.toThrow('HTTP 403');
    expect(vnc.accepted).toBe(0);
  });

  it('answers 502 when the guest cannot be reached', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    tokens.add('gone', { port: deadPort });
    await expect(open('/?token=gone')).rejects.toThrow('HTTP 502');
  });

  it('speaks the CONNECT preamble when the token has an internal access path', async () => {
    const seen: string[] = [];
    const gw = net.createServer((s) => {
      s.once('data', (d) => {
        seen.push(d.toString());
        s.write('HTTP/1.1 200 OK\r\n\r\nRFB 003.008\n');
      });
    });
    await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r));
    tokens.add('gw', { port: (gw.address() as AddressInfo).port, internalAccessPath: 'console-42' });
    const { ws, first } = await open('/?token=gw');
    expect(seen).toEqual(['CONNECT console-42 HTTP/1.1\r\n\r\n']);
    expect(first.toString()).toBe('RFB 003.008\n');
    ws.terminate();
    gw.close();
  });

  it('serves the console page and noVNC from the installed package', async () => {
    const base = `http://127.0.0.1:${proxyPort}`;
    const page = await fetch(`${base}/vnc_auto.html?path=%3Ftoken%3Dx`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('novamon-console.js');
    const script = await fetch(`${base}/novamon-console.js`);
    expect(await script.text()).toContain("import RFB from './core/rfb.js'");
    const rfb = await fetch(`${base}/core/rfb.js`);
    expect(rfb.status).toBe(200);
    expect(rfb.headers.get('content-type')).toContain('text/javascript');
    expect(await rfb.text()).toContain('export default class RFB');
    expect((await fetch(`${base}/core/../package.json`)).status).toBe(404);
    expect((await fetch(`${base}/core/%2e%2e/package.json`)).status).toBe(404);
    expect((await fetch(`${base}/etc/passwd`)).status).toBe(404);
    expect((await fetch(`${base}/vnc_auto.html`, { method: 'POST' })).status).toBe(405);
  });

  it('close() closes open bridges with 1001', async () => {
    tokens.add('t', { port: vncPort });
    const { ws } = await open('/?token=t');
    const code = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    await proxy.close();
    expect(await code).toBe(1001);
    expect(proxy.stats().open).toBe(0);
  });
});

/** A TCP serial port as QEMU serves one: silent until the guest writes, one client at a time. */
class SerialPort {
  accepted = 0;
  readonly received: Buffer[] = [];
  readonly server = net.createServer((s) => {
    this.accepted++;
    s.on('data', (d: Buffer) => {
      this.received.push(d);
      s.write(Buffer.concat([Buffer.from('echo:'), d]));
    });
    s.on('error', () => undefined);
  });
  async start(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }
}

describe('ConsoleProxy as the serial proxy (no greeting, one session per port, no pages)', () => {
  let serial: SerialPort;
  let serialPort: number;
  let serialProxy: ConsoleProxy;
  let serialProxyPort: number;

  beforeEach(async () => {
    serial = new SerialPort();
    serialPort = await serial.start();
    const authorizer = new ConsoleAuthorizer(tokens, { getByUuid: async () => ({ host: 'compute-a' }) }, { validate: async () => true }, {
      consoleType: 'serial',
      allowedOriginHostnames: allowedOriginHostnames('ws://127.0.0.1:6083/', ['127.0.0.1']),
      baseUrl: 'ws://127.0.0.1:6083/',
      lookupTimeoutMs: 2000,
    });
    serialProxy = new ConsoleProxy({ authorizer, logger: silentLogger(), name: 'serialproxy', serverGreets: false, exclusive: true, staticFiles: null, bridge: { forwardText: true } });
    serialProxyPort = (await serialProxy.listen('127.0.0.1', 0)).port;
  });

  afterEach(async () => {
    await serialProxy.close();
    await new Promise((r) => serial.server.close(r));
  });

  /** Opens a session without waiting for bytes (a serial port sends none until the guest writes). */
  function session(token: string): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${serialProxyPort}/?token=${token}`, ['binary']);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body.trim()}`)));
      });
      ws.once('error', reject);
      ws.once('open', () => resolve(ws));
    });
  }

  function nextMessage(ws: WebSocket): Promise<string> {
    return new Promise((r) => ws.once('message', (d: Buffer) => r(d.toString())));
  }

  it('bridges a port that never speaks first, and passes typed text frames on as bytes', async () => {
    tokens.add('s1', { port: serialPort, consoleType: 'serial', accessUrlBase: 'ws://127.0.0.1:6083/' });
    const ws = await session('s1');
    expect(ws.protocol).toBe('binary');
    let reply = nextMessage(ws);
    ws.send('ls -l\r');
    expect(await reply).toBe('echo:ls -l\r');
    reply = nextMessage(ws);
    ws.send(Buffer.from([0x03]));
    expect(await reply).toBe('echo:\x03');
    expect(Buffer.concat(serial.received).toString()).toBe('ls -l\r\x03');
    ws.close();
    await expect.poll(() => serialProxy.stats().open).toBe(0);
  });

  it('refuses a second session on the same port with 409 until the first one closes', async () => {
    tokens.add('a', { port: serialPort, consoleType: 'serial' });
    tokens.add('b', { port: serialPort, consoleType: 'serial' });
    const first = await session('a');
    await expect(session('b')).rejects.toThrow('HTTP 409: The console is in use by another session; close that one first');
    expect(serial.accepted).toBe(1);
    first.close();
    await expect.poll(() => serialProxy.stats().open).toBe(0);
    const second = await session('b');
    const reply = nextMessage(second);
    second.send('x');
    expect(await reply).toBe('echo:x');
    expect(serial.accepted).toBe(2);
    second.close();
  });

  it('frees the port when reaching it fails, so the next session can try again', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    tokens.add('d1', { port: deadPort, consoleType: 'serial' });
    tokens.add('d2', { port: deadPort, consoleType: 'serial' });
    await expect(session('d1')).rejects.toThrow('HTTP 502');
    await expect(session('d2')).rejects.toThrow('HTTP 502');
  });

  it('refuses a noVNC token, and answers plain HTTP with 426 (no pages)', async () => {
    tokens.add('vnc', { port: serialPort });
    await expect(session('vnc')).rejects.toThrow('HTTP 403');
    expect(serial.accepted).toBe(0);
    const page = await fetch(`http://127.0.0.1:${serialProxyPort}/vnc_auto.html`);
    expect(page.status).toBe(426);
    expect(page.headers.get('upgrade')).toBe('websocket');
  });
});
