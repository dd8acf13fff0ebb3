// Reaching a guest's console server. An RFB server speaks first, and QEMU listens for VNC with a backlog of
// one: when several connections arrive while its main loop is busy, the kernel answers the extra ones
// with SYN cookies and then drops them from the full accept queue, and the client is left with a socket
// that connected and will never hear a byte. So connections to one VNC server are dialled one at a time,
// each handed over only once the server has greeted, and a server that stays silent is dialled again
// while the time allowed lasts. A serial port says nothing until the guest writes: with `serverGreets`
// off the socket is handed over once connected (still one dial at a time per address).

import net, { type Socket } from 'node:net';
import { KeyedChain } from '../keyed-chain.js';
import type { Logger } from '../logging.js';
import type { ConsoleTarget } from './authorizer.js';

export interface GuestConnectorOptions {
  /** The whole budget for one console: waiting for its turn, connecting, CONNECT, and the greeting. */
  timeoutMs: number;
  /** A server that accepted but has not greeted in this long is dropped and dialled again. Default 2 s. */
  greetingTimeoutMs?: number;
  /** Whether the console server speaks first (VNC: it does; a serial port: it does not). Default true. */
  serverGreets?: boolean;
  logger?: Logger;
}

type GuestAddress = Pick<ConsoleTarget, 'host' | 'port' | 'internalAccessPath'>;

export class GuestConnector {
  private readonly dialling = new KeyedChain();
  private readonly greetingTimeoutMs: number;

  constructor(private readonly opts: GuestConnectorOptions) {
    this.greetingTimeoutMs = opts.greetingTimeoutMs ?? 2000;
  }

  /**
   * Resolves with a socket whose first bytes (the server's greeting) are still unread, paused. Once
   * `signal` is aborted (the browser went away while waiting its turn), nothing more is dialled.
   */
  connect(target: GuestAddress, signal?: AbortSignal): Promise<Socket> {
    const deadline = Date.now() + this.opts.timeoutMs;
    return this.dialling.run(`${target.host}:${target.port}`, () => this.dial(target, deadline, signal));
  }

  private async dial(target: GuestAddress, deadline: number, signal: AbortSignal | undefined): Promise<Socket> {
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw new Error('given up: the request went away');
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(attempt === 1 ? `timed out after ${this.opts.timeoutMs} ms` : `no greeting in ${this.opts.timeoutMs} ms (${attempt - 1} connections)`);
      }
      const sock = await connectGuest(target, left);
      if (this.opts.serverGreets === false) return sock;
      const heard = await awaitGreeting(sock, Math.min(this.greetingTimeoutMs, deadline - Date.now()));
      if (heard === 'greeted') return sock;
      sock.destroy();
      if (heard === 'closed') throw new Error('the console server closed the connection before greeting');
      this.opts.logger?.warn({ target: `${target.host}:${target.port}`, attempt }, 'console server accepted but sent no greeting; dialling again');
    }
  }
}

/** Waits for the first bytes without consuming them: they are put back and the socket is left paused. */
function awaitGreeting(sock: Socket, timeoutMs: number): Promise<'greeted' | 'silent' | 'closed'> {
  if (sock.readableLength > 0) return Promise.resolve('greeted');
  return new Promise((resolve) => {
    const done = (outcome: 'greeted' | 'silent' | 'closed') => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      resolve(outcome);
    };
    const onData = (chunk: Buffer) => {
      sock.pause();
      sock.unshift(chunk);
      done('greeted');
    };
    const onClose = () => done('closed');
    const timer = setTimeout(() => done('silent'), Math.max(0, timeoutMs));
    sock.on('data', onData);
    sock.once('close', onClose);
    sock.resume();
  });
}

/** Connects to the guest's console, and speaks Nova's CONNECT preamble when the token asks for it. */
function connectGuest(target: GuestAddress, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once('error', fail);
    sock.once('connect', () => {
      if (!target.internalAccessPath) {
        clearTimeout(timer);
        sock.off('error', fail);
        // Until the bridge listens, an error only has to close the socket (the bridge sees it destroyed).
        sock.on('error', () => undefined);
        resolve(sock);
        return;
      }
      sock.write(`CONNECT ${target.internalAccessPath} HTTP/1.1\r\n\r\n`);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 8192) fail(new Error('CONNECT answer too long'));
          return;
        }
        sock.off('data', onData);
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.[01] 200\b/.test(status)) return fail(new Error(`CONNECT refused: ${status}`));
        clearTimeout(timer);
        sock.off('error', fail);
        sock.on('error', () => undefined);
        sock.pause();
        const rest = head.subarray(end + 4);
        if (rest.length > 0) sock.unshift(rest);
        resolve(sock);
      };
      sock.on('data', onData);
    });
  });
}
