// A minimal client for libvirtd's own RPC protocol over its UNIX socket: one long-lived connection,
// calls matched to replies by serial, a timeout on every call, asynchronous event messages handed to
// listeners, keepalive pings answered. No process is forked per call (see docs/libvirt-access.md).

import net from 'node:net';
import {
  AuthType, decodeHeader, encodeMessage, HEADER_SIZE, KEEPALIVE_PROGRAM, KeepaliveProc, MAX_MESSAGE, MessageStatus,
  MessageType, PROTOCOL_VERSION, QEMU_PROGRAM, QemuProc, readDomain, readRemoteError, readTypedParams, REMOTE_PROGRAM,
  RemoteProc, writeDomain, type DomainHandle, type RemoteError, type TypedParamValue,
} from './protocol.js';
import { decodeEventMessage, type EventMessage } from './event-messages.js';
import { XdrReader, XdrWriter } from './xdr.js';

/** libvirtd answered the call with an error (virError): code and message are libvirt's. */
export class LibvirtRpcError extends Error {
  override readonly name = 'LibvirtRpcError';
  constructor(readonly error: RemoteError, readonly procedure: number) {
    super(error.message ?? `libvirt error code ${error.code}`);
  }
  get code(): number {
    return this.error.code;
  }
}

/** The socket could not be opened, or broke: libvirtd is not (or no longer) reachable. */
export class LibvirtConnectionError extends Error {
  override readonly name = 'LibvirtConnectionError';
}

/** A call got no reply within its timeout. */
export class LibvirtTimeoutError extends Error {
  override readonly name = 'LibvirtTimeoutError';
  constructor(readonly procedure: number, readonly timeoutMs: number) {
    super(`libvirt procedure ${procedure} got no reply within ${timeoutMs} ms`);
  }
}

export interface LibvirtConnectionOptions {
  socketPath: string;
  /** URI passed to CONNECT_OPEN, e.g. qemu:///system. */
  uri: string;
  connectTimeoutMs: number;
  callTimeoutMs: number;
}

export type { LifecycleMessage } from './event-messages.js';

/** A download stream (libvirt's readstream) riding on a call's serial: data until EOF, capped. */
interface Download {
  prog: number;
  proc: number;
  chunks: Buffer[];
  length: number;
  maxBytes: number;
  done: (err: Error | null) => void;
}

/** The stream sent more than the caller accepts. */
export class LibvirtStreamTooLarge extends Error {
  override readonly name = 'LibvirtStreamTooLarge';
}

interface Pending {
  resolve: (r: XdrReader) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  proc: number;
}

export class LibvirtConnection {
  private serial = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly downloads = new Map<number, Download>();
  private buffered: Buffer[] = [];
  private bufferedLength = 0;
  private closedError: Error | null = null;
  private readonly eventListeners = new Set<(m: EventMessage) => void>();
  private readonly closeListeners = new Set<(e: Error) => void>();

  private constructor(private readonly socket: net.Socket, private readonly options: LibvirtConnectionOptions) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new LibvirtConnectionError(`libvirt socket error: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new LibvirtConnectionError('libvirt connection closed')));
  }

  /** Connects to the socket and opens the hypervisor connection; fails promptly when libvirtd is down. */
  static async open(options: LibvirtConnectionOptions): Promise<LibvirtConnection> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection({ path: options.socketPath });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new LibvirtConnectionError(`no connection to ${options.socketPath} within ${options.connectTimeoutMs} ms`));
      }, options.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new LibvirtConnectionError(`cannot connect to ${options.socketPath}: ${err.message}`, { cause: err }));
      });
    });
    const conn = new LibvirtConnection(socket, options);
    try {
      // AUTH_LIST comes first: libvirtd marks a root UNIX-socket client as authenticated (polkit
      // bypass for privileged peers) only when it asks. SASL is not supported here.
      const auth = (await conn.call(REMOTE_PROGRAM, RemoteProc.AUTH_LIST, null, options.connectTimeoutMs)).array((r) => r.int(), 20);
      if (!auth.includes(AuthType.NONE)) {
        if (!auth.includes(AuthType.POLKIT)) throw new LibvirtConnectionError(`libvirtd requires an unsupported authentication (${auth.join(', ')})`);
        await conn.call(REMOTE_PROGRAM, RemoteProc.AUTH_POLKIT, null, options.connectTimeoutMs);
      }
      await conn.call(REMOTE_PROGRAM, RemoteProc.CONNECT_OPEN, new XdrWriter().optional(options.uri, (w, v) => w.string(v)).uint(0), options.connectTimeoutMs);
    } catch (err) {
      socket.destroy();
      throw err;
    }
    return conn;
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  onClose(listener: (e: Error) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Every event message libvirtd sends this connection (lifecycle, reboot, QEMU monitor events). */
  onEvent(listener: (m: EventMessage) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Sends one call and resolves with a reader positioned at the reply's payload. */
  call(prog: number, proc: number, args: XdrWriter | null, timeoutMs = this.options.callTimeoutMs): Promise<XdrReader> {
    if (this.closedError) return Promise.reject(this.closedError);
    this.serial = (this.serial + 1) >>> 0;
    const serial = this.serial;
    const payload = args ? args.toBuffer() : Buffer.alloc(0);
    return new Promise<XdrReader>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(serial);
        reject(new LibvirtTimeoutError(proc, timeoutMs));
      }, timeoutMs);
      this.pending.set(serial, { resolve, reject, timer, proc });
      this.socket.write(encodeMessage({ prog, vers: PROTOCOL_VERSION, proc, type: MessageType.CALL, serial, status: MessageStatus.OK }, payload));
    });
  }

  /** Closes the hypervisor connection politely, then the socket; pending calls fail. */
  async close(): Promise<void> {
    if (this.closedError) return;
    try {
      await this.call(REMOTE_PROGRAM, RemoteProc.CONNECT_CLOSE, null, 1000);
    } catch {
      // The socket is torn down below either way; a failed goodbye changes nothing.
    }
    this.fail(new LibvirtConnectionError('libvirt connection closed by novamon'));
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const d of this.downloads.values()) d.done(err);
    this.downloads.clear();
    this.socket.destroy();
    for (const l of this.closeListeners) l(err);
  }

  private onData(chunk: Buffer): void {
    this.buffered.push(chunk);
    this.bufferedLength += chunk.length;
    let buf = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedLength);
    while (buf.length >= 4) {
      const total = buf.readUInt32BE(0);
      if (total < 4 + HEADER_SIZE || total > MAX_MESSAGE) {
        this.fail(new LibvirtConnectionError(`libvirt sent a message of impossible length ${total}`));
        return;
      }
      if (buf.length < total) break;
      const message = buf.subarray(4, total);
      buf = buf.subarray(total);
      try {
        this.dispatch(message);
      } catch (err) {
        this.fail(new LibvirtConnectionError(`undecodable libvirt message: ${(err as Error).message}`, { cause: err }));
        return;
      }
    }
    this.buffered = buf.length > 0 ? [buf] : [];
    this.bufferedLength = buf.length;
  }

  private dispatch(message: Buffer): void {
    const r = new XdrReader(message);
    const h = decodeHeader(r);
    if (h.prog === KEEPALIVE_PROGRAM) {
      if (h.proc === KeepaliveProc.PING) {
        this.socket.write(encodeMessage({ ...h, proc: KeepaliveProc.PONG, type: MessageType.MESSAGE, serial: 0, status: MessageStatus.OK }, Buffer.alloc(0)));
      }
      return;
    }
    if (h.type === MessageType.MESSAGE) {
      const m = decodeEventMessage(h.prog, h.proc, r);
      if (m) for (const l of this.eventListeners) l(m);
      return;
    }
    if (h.type === MessageType.STREAM) {
      this.onStream(h.serial, h.status, r);
      return;
    }
    if (h.type !== MessageType.REPLY) return;
    const p = this.pending.get(h.serial);
    if (!p) return; // a reply to a call that already timed out
    this.pending.delete(h.serial);
    clearTimeout(p.timer);
    if (h.status === MessageStatus.OK) p.resolve(r);
    else p.reject(new LibvirtRpcError(readRemoteError(r), p.proc));
  }

  /**
   * One stream packet: data (CONTINUE with bytes), end of stream (CONTINUE without bytes, which we
   * answer with OK as virStreamFinish does; libvirtd confirms with an OK we ignore), or an error.
   */
  private onStream(serial: number, status: number, r: XdrReader): void {
    const d = this.downloads.get(serial);
    if (!d) return; // a finished or abandoned stream's confirmation
    if (status === MessageStatus.CONTINUE && r.remaining > 0) {
      const data = r.rest();
      d.length += data.length;
      // Past the cap we keep reading (and dropping) to the end, so libvirtd's side finishes cleanly.
      if (d.length <= d.maxBytes) d.chunks.push(data);
      return;
    }
    this.downloads.delete(serial);
    if (status !== MessageStatus.ERROR) {
      this.socket.write(encodeMessage({ prog: d.prog, vers: PROTOCOL_VERSION, proc: d.proc, type: MessageType.STREAM, serial, status: MessageStatus.OK }, Buffer.alloc(0)));
      d.done(d.length > d.maxBytes ? new LibvirtStreamTooLarge(`stream of ${d.length} bytes is over the ${d.maxBytes}-byte cap`) : null);
    } else {
      d.done(new LibvirtRpcError(readRemoteError(r), d.proc));
    }
  }

  /**
   * A call whose procedure answers with a download stream (virDomainScreenshot): the reply, then the
   * stream's bytes up to `maxBytes`, all within `timeoutMs`.
   */
  async callWithDownload(prog: number, proc: number, args: XdrWriter, maxBytes: number, timeoutMs = this.options.callTimeoutMs): Promise<{ reply: XdrReader; data: Buffer }> {
    const serial = (this.serial + 1) >>> 0; // the serial call() is about to use
    let timer: NodeJS.Timeout | undefined;
    const download = new Promise<Buffer>((resolve, reject) => {
      const d: Download = {
        prog, proc, chunks: [], length: 0, maxBytes,
        done: (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(Buffer.concat(d.chunks));
        },
      };
      this.downloads.set(serial, d);
      timer = setTimeout(() => {
        this.downloads.delete(serial);
        reject(new LibvirtTimeoutError(proc, timeoutMs));
      }, timeoutMs);
    });
    download.catch(() => undefined);
    try {
      const reply = await this.call(prog, proc, args, timeoutMs);
      return { reply, data: await download };
    } catch (err) {
      this.downloads.delete(serial);
      clearTimeout(timer);
      throw err;
    }
  }

  // ---- typed procedures -------------------------------------------------------------------------

  private async remote(proc: number, args: XdrWriter | null, timeoutMs?: number): Promise<XdrReader> {
    return this.call(REMOTE_PROGRAM, proc, args, timeoutMs);
  }

  private dom(d: DomainHandle): XdrWriter {
    const w = new XdrWriter();
    writeDomain(w, d);
    return w;
  }

  async lookupByName(name: string): Promise<DomainHandle> {
    return readDomain(await this.remote(RemoteProc.DOMAIN_LOOKUP_BY_NAME, new XdrWriter().string(name)));
  }

  async lookupByUuid(uuid: Buffer): Promise<DomainHandle> {
    return readDomain(await this.remote(RemoteProc.DOMAIN_LOOKUP_BY_UUID, new XdrWriter().fixedOpaque(uuid, 16)));
  }

  async listAllDomains(flags = 0): Promise<DomainHandle[]> {
    const r = await this.remote(RemoteProc.CONNECT_LIST_ALL_DOMAINS, new XdrWriter().int(1).uint(flags));
    return r.array(readDomain);
  }

  async getState(d: DomainHandle): Promise<{ state: number; reason: number }> {
    const r = await this.remote(RemoteProc.DOMAIN_GET_STATE, this.dom(d).uint(0));
    return { state: r.int(), reason: r.int() };
  }

  async getXmlDesc(d: DomainHandle, flags = 0): Promise<string> {
    return (await this.remote(RemoteProc.DOMAIN_GET_XML_DESC, this.dom(d).uint(flags))).string();
  }

  /**
   * virDomainGetVcpus without CPU maps: each online vCPU's number and CPU time (ns), which libvirtd reads
   * from the vCPU thread's /proc entry (no domain job, nothing asked of QEMU). At most `maxinfo` entries.
   */
  async getVcpus(d: DomainHandle, maxinfo: number): Promise<{ number: number; cpuTimeNs: bigint }[]> {
    const r = await this.remote(RemoteProc.DOMAIN_GET_VCPUS, this.dom(d).int(maxinfo).int(0));
    return r.array((x) => {
      const number = x.uint();
      x.int(); // state
      const cpuTimeNs = x.uhyper();
      x.int(); // host CPU it last ran on
      return { number, cpuTimeNs };
    }, maxinfo);
  }

  async create(d: DomainHandle, timeoutMs?: number): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_CREATE, this.dom(d), timeoutMs);
  }

  async createXml(xml: string, flags = 0, timeoutMs?: number): Promise<DomainHandle> {
    return readDomain(await this.remote(RemoteProc.DOMAIN_CREATE_XML, new XdrWriter().string(xml).uint(flags), timeoutMs));
  }

  async defineXml(xml: string): Promise<DomainHandle> {
    return readDomain(await this.remote(RemoteProc.DOMAIN_DEFINE_XML, new XdrWriter().string(xml)));
  }

  async undefine(d: DomainHandle, flags = 0): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_UNDEFINE_FLAGS, this.dom(d).uint(flags));
  }

  async destroy(d: DomainHandle, timeoutMs?: number): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_DESTROY, this.dom(d), timeoutMs);
  }

  async shutdown(d: DomainHandle, flags: number): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_SHUTDOWN_FLAGS, this.dom(d).uint(flags));
  }

  async suspend(d: DomainHandle): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_SUSPEND, this.dom(d));
  }

  async resume(d: DomainHandle): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_RESUME, this.dom(d));
  }

  async reboot(d: DomainHandle, flags: number): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_REBOOT, this.dom(d).uint(flags));
  }

  async reset(d: DomainHandle): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_RESET, this.dom(d).uint(0));
  }

  /** virDomainInjectNMI. */
  async injectNmi(d: DomainHandle): Promise<void> {
    await this.remote(RemoteProc.DOMAIN_INJECT_NMI, this.dom(d).uint(0));
  }

  /** virDomainScreenshot of screen 0: libvirt's mime type and the image bytes (capped). */
  async screenshot(d: DomainHandle, maxBytes: number, timeoutMs?: number): Promise<{ mime: string | null; data: Buffer }> {
    const { reply, data } = await this.callWithDownload(REMOTE_PROGRAM, RemoteProc.DOMAIN_SCREENSHOT, this.dom(d).uint(0).uint(0), maxBytes, timeoutMs);
    return { mime: reply.optional((r) => r.string()), data };
  }

  /** virDomainQemuMonitorCommand: QMP JSON (flags 0) or an HMP line (flags 1); returns QEMU's text. */
  async monitorCommand(d: DomainHandle, command: string, flags: number, timeoutMs?: number): Promise<string> {
    const r = await this.call(QEMU_PROGRAM, QemuProc.DOMAIN_MONITOR_COMMAND, this.dom(d).string(command).uint(flags), timeoutMs);
    return r.string();
  }

  async getAllDomainStats(doms: readonly DomainHandle[], stats: number, flags = 0, timeoutMs?: number): Promise<{ domain: DomainHandle; params: Map<string, TypedParamValue> }[]> {
    const w = new XdrWriter().array(doms, (x, d) => writeDomain(x, d)).uint(stats).uint(flags);
    const r = await this.remote(RemoteProc.CONNECT_GET_ALL_DOMAIN_STATS, w, timeoutMs);
    return r.array((x) => ({ domain: readDomain(x), params: readTypedParams(x) }));
  }
}

