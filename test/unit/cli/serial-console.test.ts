// novamon-manage console's client against an in-process WebSocket server standing in for the proxy.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { attachSerialConsole, checkConsoleUrl, ConsoleRefusedByProxy, ESCAPE } from '../../../src/cli/serial-console.js';

let server: http.Server;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A proxy stand-in: `onSession` gets each accepted session; `refuse` answers the upgrade with an HTTP status. */
async function proxy(onSession: (ws: WebSocket) => void, refuse?: { status: number; text: string }): Promise<string> {
  const wss = new WebSocketServer({ noServer: true });
  server = http.createServer();
  server.on('upgrade', (req, socket, head) => {
    if (refuse) return void socket.end(`HTTP/1.1 ${refuse.status} Refused\r\nContent-Length: ${refuse.text.length}\r\nConnection: close\r\n\r\n${refuse.text}`);
    wss.handleUpgrade(req, socket, head, onSession);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}/?token=t`;
}

function io() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { stdin, stdout, stderr, out: () => out, err: () => err };
}

describe('serial console client', () => {
  it('shows what the guest writes, sends what is typed as binary frames, and leaves on Ctrl-] without sending it', async () => {
    const typed: Buffer[] = [];
    const url = await proxy((ws) => {
      ws.send(Buffer.from('login: '));
      ws.on('message', (d: Buffer, binary: boolean) => {
        expect(binary).toBe(true);
        typed.push(d);
      });
    });
    const t = io();
    const session = attachSerialConsole(url, t, 'instance-0000000a');
    await expect.poll(() => t.out()).toBe('login: ');
    t.stdin.write('root\r');
    await expect.poll(() => Buffer.concat(typed).toString()).toBe('root\r');
    t.stdin.write(Buffer.concat([Buffer.from('x'), Buffer.from([ESCAPE]), Buffer.from('never sent')]));
    expect(await session).toEqual({ by: 'escape', code: null });
    expect(Buffer.concat(typed).toString()).toBe('root\rx');
    expect(t.err()).toContain('Connected to instance-0000000a (escape character is ^])');
  });

  it('ends when the input ends, and reports a session the proxy closed', async () => {
    const url = await proxy(() => undefined);
    const t = io();
    const session = attachSerialConsole(url, t, 'vm');
    await expect.poll(() => t.err()).toContain('Connected to vm');
    t.stdin.end();
    expect(await session).toEqual({ by: 'input-ended', code: null });

    const url2 = await new Promise<string>((r) => server.close(() => r(proxy((ws) => setTimeout(() => ws.close(1001, 'Proxy shutting down'), 20)))));
    const t2 = io();
    expect(await attachSerialConsole(url2, t2, 'vm')).toEqual({ by: 'proxy', code: 1001 });
    expect(t2.err()).toContain('The console proxy closed the session (1001)');
  });

  it('reports a refusal with its status and text, and dials only ws:// or wss://', async () => {
    const url = await proxy(() => undefined, { status: 409, text: 'The console is in use by another session; close that one first' });
    const err = await attachSerialConsole(url, io(), 'vm').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConsoleRefusedByProxy);
    expect((err as Error).message).toBe('the console proxy refused the session: HTTP 409: The console is in use by another session; close that one first');
    expect(() => checkConsoleUrl('http://127.0.0.1:6080/vnc_auto.html')).toThrow('a serial console URL is ws:// or wss://, not http:');
    expect(() => checkConsoleUrl('not a url')).toThrow('not a console URL');
    expect(checkConsoleUrl('wss://console.example.org/?token=x').host).toBe('console.example.org');
  });
});
