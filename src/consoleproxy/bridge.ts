// One browser-to-guest console bridge: binary WebSocket frames in one direction, TCP bytes in the other.
// Each side is paused while the other cannot take more (bounded memory whatever the speeds), and when
// either side ends or fails the other is closed too; `closed` settles once both are gone.

import type { Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';

export interface BridgeOptions {
  /** Pause the guest socket when this many bytes wait to go out on the WebSocket (default 1 MiB). */
  highWaterMark?: number;
  /** ...and resume it once they are down to this (default 256 KiB). */
  lowWaterMark?: number;
  /** After one side closed, the other gets this long to finish its close before it is destroyed. */
  closeGraceMs?: number;
  /**
   * Forward text frames to the guest as their UTF-8 bytes (a serial terminal sends what is typed as text).
   * Off by default: RFB travels in binary frames only, so text from a VNC client means a confused client.
   */
  forwardText?: boolean;
}

export interface BridgeStats {
  bytesToGuest: number;
  bytesToClient: number;
  /** Times the guest socket was paused because the WebSocket was behind. */
  guestPauses: number;
  /** Times the WebSocket was paused because the guest socket was behind. */
  clientPauses: number;
  /** Largest WebSocket bufferedAmount seen right after a send. */
  maxBufferedAmount: number;
  /** Who ended the bridge first. */
  closedBy: 'client' | 'guest' | 'proxy' | 'error' | null;
  /** The first error seen on either side, if any. */
  error: string | null;
}

const DEFAULT_HIGH = 1024 * 1024;
const DEFAULT_LOW = 256 * 1024;
const DEFAULT_GRACE_MS = 5000;

export class ConsoleBridge {
  readonly closed: Promise<BridgeStats>;
  private readonly stats: BridgeStats = {
    bytesToGuest: 0, bytesToClient: 0, guestPauses: 0, clientPauses: 0, maxBufferedAmount: 0, closedBy: null, error: null,
  };
  private readonly high: number;
  private readonly low: number;
  private readonly graceMs: number;
  private readonly forwardText: boolean;
  private guestPaused = false;
  private clientPaused = false;
  private wsClosed = false;
  private tcpClosed = false;
  private graceTimer: NodeJS.Timeout | null = null;
  private resolveClosed!: (s: BridgeStats) => void;

  constructor(
    private readonly ws: WebSocket,
    private readonly tcp: Socket,
    opts: BridgeOptions = {},
  ) {
    this.high = opts.highWaterMark ?? DEFAULT_HIGH;
    this.low = Math.min(opts.lowWaterMark ?? DEFAULT_LOW, this.high);
    this.graceMs = opts.closeGraceMs ?? DEFAULT_GRACE_MS;
    this.forwardText = opts.forwardText ?? false;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    tcp.setNoDelay(true);
    tcp.on('data', (chunk: Buffer) => this.toClient(chunk));
    tcp.on('drain', () => this.onGuestDrain());
    tcp.on('end', () => this.end('guest'));
    tcp.on('error', (err) => this.fail(`guest: ${err.message}`));
    tcp.on('close', () => this.onTcpClose());
    ws.on('message', (data: RawData, isBinary: boolean) => this.toGuest(data, isBinary));
    ws.on('close', () => this.onWsClose());
    ws.on('error', (err) => this.fail(`client: ${err.message}`));
    // The socket may have been paused by whoever connected it (CONNECT preamble); the bridge drives it now.
    tcp.resume();
    if (ws.readyState !== WebSocket.OPEN) this.onWsClose();
    if (tcp.destroyed) this.onTcpClose();
  }

  /** A snapshot of the counters (the final ones come with `closed`). */
  snapshot(): BridgeStats {
    return { ...this.stats };
  }

  /** Ends the bridge from the proxy's side (shutdown): the browser gets `code`, the guest a FIN. */
  close(code = 1001, reason = 'Proxy shutting down'): Promise<BridgeStats> {
    this.stats.closedBy ??= 'proxy';
    this.closeWs(code, reason);
    this.endTcp();
    return this.closed;
  }

  private toClient(chunk: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.stats.bytesToClient += chunk.length;
    // ws calls back once the frame is handed to the kernel; that is when the queue shrinks again.
    this.ws.send(chunk, { binary: true }, () => this.onClientProgress());
    const buffered = this.ws.bufferedAmount;
    if (buffered > this.stats.maxBufferedAmount) this.stats.maxBufferedAmount = buffered;
    if (buffered > this.high && !this.guestPaused) {
      this.guestPaused = true;
      this.stats.guestPauses++;
      this.tcp.pause();
    }
  }

  private onClientProgress(): void {
    if (this.guestPaused && this.ws.bufferedAmount <= this.low) {
      this.guestPaused = false;
      if (!this.tcpClosed) this.tcp.resume();
    }
  }

  private toGuest(data: RawData, isBinary: boolean): void {
    if (!isBinary && !this.forwardText) {
      // websockify's binary protocol carries RFB in binary frames only; text means a confused client.
      this.stats.closedBy ??= 'error';
      this.stats.error ??= 'client sent a text frame';
      this.closeWs(1003, 'Binary frames only');
      this.endTcp();
      return;
    }
    if (this.tcpClosed || this.tcp.destroyed || this.tcp.writableEnded) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    this.stats.bytesToGuest += buf.length;
    if (!this.tcp.write(buf) && !this.clientPaused) {
      this.clientPaused = true;
      this.stats.clientPauses++;
      this.ws.pause();
    }
  }

  private onGuestDrain(): void {
    if (!this.clientPaused) return;
    this.clientPaused = false;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.resume();
  }

  private end(by: 'client' | 'guest'): void {
    this.stats.closedBy ??= by;
    if (by === 'guest') this.closeWs(1000, 'Target closed');
    else this.endTcp();
  }

  private fail(message: string): void {
    this.stats.closedBy ??= 'error';
    this.stats.error ??= message;
    this.tcp.destroy();
    if (!this.wsClosed) {
      if (this.ws.readyState === WebSocket.OPEN) this.closeWs(1011, 'Console connection failed');
      else this.ws.terminate();
    }
  }

  private onWsClose(): void {
    if (this.wsClosed) return;
    this.wsClosed = true;
    this.end('client');
    this.settle();
  }

  private onTcpClose(): void {
    if (this.tcpClosed) return;
    this.tcpClosed = true;
    this.end('guest');
    this.settle();
  }

  private closeWs(code: number, reason: string): void {
    if (this.wsClosed) return;
    // A paused WebSocket would never read the browser's close frame; what it still delivers is dropped.
    if (this.clientPaused) {
      this.clientPaused = false;
      this.ws.resume();
    }
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    this.armGrace();
  }

  private endTcp(): void {
    if (this.tcpClosed) return;
    // Keep reading (and dropping) so the guest's own FIN is seen and the socket can close.
    if (this.guestPaused) {
      this.guestPaused = false;
      this.tcp.resume();
    }
    // The guest sees a FIN; a guest that keeps its side open is cut off after the grace period.
    this.tcp.end();
    this.armGrace();
  }

  private armGrace(): void {
    if (this.graceTimer) return;
    this.graceTimer = setTimeout(() => {
      if (!this.wsClosed) this.ws.terminate();
      if (!this.tcpClosed) this.tcp.destroy();
    }, this.graceMs);
    this.graceTimer.unref();
  }

  private settle(): void {
    if (!this.wsClosed || !this.tcpClosed) return;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.resolveClosed(this.snapshot());
  }
}
