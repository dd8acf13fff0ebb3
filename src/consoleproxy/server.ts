// A console proxy's listener: one HTTP server that turns WebSocket upgrades into console bridges once the
// authorizer has accepted them, and (novamon-novncproxy) serves the console page and noVNC's files.
// Refused requests are answered before the WebSocket handshake and before anything connects to the guest.
// novamon-serialproxy uses the same listener without pages, without waiting for a greeting (a serial
// port says nothing until the guest writes), and with one session per serial port, as libvirt allows.

import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../logging.js';
import { ConsoleRefused, type ConsoleAuthorizer, type ConsoleTarget } from './authorizer.js';
import { ConsoleBridge, type BridgeOptions, type BridgeStats } from './bridge.js';
import { GuestConnector } from './guest-connector.js';
import { ConsoleStaticFiles } from './static.js';
import { extractToken } from './token.js';

export interface ConsoleProxyOptions {
  authorizer: Pick<ConsoleAuthorizer, 'authorize'>;
  logger: Logger;
  /** The log component: `novncproxy` (default) or `serialproxy`. */
  name?: string;
  /** Whether the console server speaks first (VNC). Default true; false for serial ports. */
  serverGreets?: boolean;
  /**
   * One session per console address: a second request while one is open (or being opened) is refused with
   * 409. QEMU's TCP serial port serves one client and leaves the next one connected but silent.
   */
  exclusive?: boolean;
  /** Bound on reaching the guest's VNC server: its turn, the connection, CONNECT, the greeting. Default 10 s. */
  connectTimeoutMs?: number;
  /** A VNC server that accepted but has not greeted in this long is dialled again. Default 2 s. */
  greetingTimeoutMs?: number;
  /** Bridges open at once; further requests get 503. Default 1024. */
  maxBridges?: number;
  /** Largest WebSocket message accepted from a browser. Default 4 MiB. */
  maxPayload?: number;
  bridge?: BridgeOptions;
  /** The pages served to plain HTTP requests; null: none (426, WebSocket only). Default: noVNC's. */
  staticFiles?: ConsoleStaticFiles | null;
}

export interface ProxyStats {
  open: number;
  accepted: number;
  refused: number;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 409: 'Conflict', 502: 'Bad Gateway', 503: 'Service Unavailable' };

export class ConsoleProxy {
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly bridges = new Set<ConsoleBridge>();
  /** Upgrades still being authorized or connected; destroyed on close. */
  private readonly pending = new Set<Duplex>();
  private readonly files: ConsoleStaticFiles | null;
  /** Console addresses with a session open or being opened (exclusive proxies only). */
  private readonly occupied = new Set<string>();
  private readonly guests: GuestConnector;
  private readonly maxBridges: number;
  private readonly counters = { accepted: 0, refused: 0 };
  private closing: Promise<void> | null = null;

  constructor(private readonly opts: ConsoleProxyOptions) {
    this.log = opts.logger.child({ component: opts.name ?? 'novncproxy' });
    this.files = opts.staticFiles === undefined ? new ConsoleStaticFiles() : opts.staticFiles;
    this.maxBridges = opts.maxBridges ?? 1024;
    this.guests = new GuestConnector({
      timeoutMs: opts.connectTimeoutMs ?? 10_000,
      greetingTimeoutMs: opts.greetingTimeoutMs,
      serverGreets: opts.serverGreets,
      logger: this.log,
    });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxPayload ?? 4 * 1024 * 1024,
      perMessageDeflate: false,
      // websockify speaks `binary`; a client that offers no subprotocol gets binary frames anyway.
      handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
    });
    this.server = http.createServer((req, res) => {
      if (!this.files) return void res.writeHead(426, { Upgrade: 'websocket', Connection: 'Upgrade', 'Content-Type': 'text/plain' }).end('WebSocket console connections only\n');
      this.files.handle(req, res).catch((err: unknown) => {
        this.log.warn({ err: String(err), url: req.url?.split('?')[0] }, 'static file request failed');
        res.destroy();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const addr = this.server.address() as AddressInfo;
        this.log.info({ host: addr.address, port: addr.port }, 'console proxy listening');
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  stats(): ProxyStats {
    return { open: this.bridges.size, ...this.counters };
  }

  /** Stops listening, refuses pending upgrades and closes every bridge (browsers get 1001). Idempotent. */
  close(timeoutMs = 5000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.pending) s.destroy();
    const all = [...this.bridges].map((b) => b.close(1001, 'Proxy shutting down'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(all), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.server.closeAllConnections();
    this.wss.close();
    await stopped;
    this.log.info({ bridges: all.length }, 'console proxy stopped');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.closing) return reject(socket, 503, 'Proxy shutting down');
    if (this.bridges.size + this.pending.size >= this.maxBridges) {
      this.log.warn({ open: this.bridges.size, max: this.maxBridges }, 'console refused: too many open consoles');
      return reject(socket, 503, 'Too many consoles open');
    }
    if (header(req, 'upgrade')?.toLowerCase() !== 'websocket' || !header(req, 'sec-websocket-key')) {
      return reject(socket, 400, 'Not a WebSocket request');
    }
    this.pending.add(socket);
    this.accept(req, socket, head)
      .catch((err: unknown) => this.refuse(req, socket, err))
      .finally(() => this.pending.delete(socket));
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const origin = header(req, 'origin') ?? header(req, 'sec-websocket-origin');
    const target = await this.opts.authorizer.authorize({ token: extractToken(req.url ?? '/', header(req, 'cookie')), origin, host: header(req, 'host') });
    if (socket.destroyed) return;
    const release = this.claim(target);
    const gone = new AbortController();
    socket.once('close', () => gone.abort());
    const guest = await this.guests.connect(target, gone.signal).catch((err: unknown) => {
      release();
      throw new ConsoleRefused('validation-failed', `Cannot reach the console at ${target.host}:${target.port}: ${String(err)}`, target.instanceUuid, 502);
    });
    if (socket.destroyed || this.closing) {
      guest.destroy();
      release();
      return;
    }
    let bridged = false;
    // ws answers a malformed handshake itself and never calls back: the guest socket must not leak then.
    socket.once('close', () => {
      if (bridged) return;
      guest.destroy();
      release();
    });
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      bridged = true;
      this.startBridge(ws, guest, target, req, release);
    });
  }

  /** Takes the console's address for this session (exclusive proxies); returns its idempotent release. */
  private claim(target: ConsoleTarget): () => void {
    if (!this.opts.exclusive) return () => undefined;
    const key = `${target.host}:${target.port}`;
    if (this.occupied.has(key)) {
      throw new ConsoleRefused('in-use', 'The console is in use by another session; close that one first', target.instanceUuid, 409);
    }
    this.occupied.add(key);
    let held = true;
    return () => {
      if (held) this.occupied.delete(key);
      held = false;
    };
  }

  private startBridge(ws: WebSocket, guest: Socket, target: ConsoleTarget, req: IncomingMessage, release: () => void): void {
    const bridge = new ConsoleBridge(ws, guest, this.opts.bridge);
    this.bridges.add(bridge);
    this.counters.accepted++;
    const log = this.log.child({ instanceUuid: target.instanceUuid });
    log.info({ remote: req.socket.remoteAddress, target: `${target.host}:${target.port}`, open: this.bridges.size }, 'console connected');
    void bridge.closed.then((s: BridgeStats) => {
      this.bridges.delete(bridge);
      release();
      log.info({ closedBy: s.closedBy, error: s.error, bytesToGuest: s.bytesToGuest, bytesToClient: s.bytesToClient, guestPauses: s.guestPauses, clientPauses: s.clientPauses }, 'console closed');
    });
  }

  private refuse(req: IncomingMessage, socket: Duplex, err: unknown): void {
    this.counters.refused++;
    const remote = req.socket.remoteAddress;
    if (err instanceof ConsoleRefused) {
      this.log.warn({ instanceUuid: err.instanceUuid, reason: err.reason, remote, origin: header(req, 'origin') }, `console refused: ${err.message}`);
      const told = err.reason === 'bad-origin' || err.reason === 'in-use';
      return reject(socket, err.status, told ? err.message : 'Console access refused');
    }
    this.log.error({ remote, err: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, 'console refused: internal error');
    reject(socket, 503, 'Console temporarily unavailable');
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function reject(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // A client that never reads its answer must not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
}
