// The libvirt host, as Nova's libvirt/host.py: owns the one connection to libvirtd (opened lazily,
// reopened after libvirtd restarts), turns transport failures into Nova exceptions, finds domains by
// name or uuid, and delivers domain lifecycle events for as long as anyone listens.

import type { Logger } from '../../logging.js';
import { HypervisorUnavailable, InstanceNotFound, InstanceNotRunning, InternalError, MonitorTimeout, NovaException } from '../../exception.js';
import { LibvirtConnection, LibvirtConnectionError, LibvirtRpcError, LibvirtTimeoutError } from './connection.js';
import { registerDeviceEvents, registerLifecycleEvents, registerMonitorEvents, registerRebootEvents, type EventMessage } from './event-messages.js';
import { ErrorCode, uuidFromString, type DomainHandle } from './protocol.js';

export interface LibvirtHostOptions {
  uri: string;
  connectTimeoutMs: number;
  callTimeoutMs: number;
  logger: Logger;
  /** First delay before reconnecting the event stream after libvirtd went away. */
  reconnectDelayMs?: number;
  /** Also subscribe to the QEMU monitor events whose names match this regular expression (libvirt-qemu passthrough). */
  monitorEvents?: string;
}

/**
 * Where a connection's guest run events come from: QEMU's own events through libvirt's monitor event
 * passthrough, or (where libvirtd refuses that) libvirt's lifecycle and reboot events.
 */
export type RunEventSource = 'monitor' | 'lifecycle';

/** Where libvirtd listens for a local URI: qemu:///system, or qemu+unix:///system?socket=PATH. */
export function socketPathForUri(uri: string): string {
  const m = /^qemu(\+unix)?:\/\/\/(system|session)(\?(.*))?$/.exec(uri);
  if (!m) throw new Error(`unsupported libvirt URI ${uri}: only local qemu:///system (or qemu+unix:///system?socket=PATH) is served`);
  const socket = new URLSearchParams(m[4] ?? '').get('socket');
  if (socket) return socket;
  if (m[2] === 'session') {
    const runtime = process.env['XDG_RUNTIME_DIR'] ?? `/run/user/${process.getuid?.() ?? 0}`;
    return `${runtime}/libvirt/libvirt-sock`;
  }
  return '/var/run/libvirt/libvirt-sock';
}

/** The URI libvirtd itself should open (the transport part stays ours). */
function serverUri(uri: string): string {
  return uri.replace(/^qemu\+unix:/, 'qemu:').replace(/\?.*$/, '');
}

export class LibvirtHost {
  private conn: LibvirtConnection | null = null;
  private opening: Promise<LibvirtConnection> | null = null;
  private readonly socketPath: string;
  private readonly eventListeners = new Set<(m: EventMessage) => void>();
  private readonly runSources = new WeakMap<LibvirtConnection, RunEventSource>();
  private eventsWanted = false;
  /** Connections that carry our lifecycle-event subscription. */
  private readonly registered = new WeakSet<LibvirtConnection>();
  /** A number per connection that carries our subscription: facts learnt under another are stale. */
  private readonly generations = new WeakMap<LibvirtConnection, number>();
  private nextGeneration = 1;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelay: number;
  private closed = false;
  hostName = 'localhost';
  /** Epoch ms when the live connection was opened. */
  connectedAt: number | null = null;

  constructor(private readonly options: LibvirtHostOptions) {
    this.socketPath = socketPathForUri(options.uri);
    this.reconnectDelay = options.reconnectDelayMs ?? 500;
  }

  get callTimeoutMs(): number {
    return this.options.callTimeoutMs;
  }

  /** The live connection, opened on first use; HypervisorUnavailable when libvirtd cannot be reached. */
  async connection(): Promise<LibvirtConnection> {
    if (this.closed) throw new HypervisorUnavailable(this.hostName, 'the libvirt driver is closed');
    if (this.conn && !this.conn.isClosed) return this.conn;
    this.opening ??= this.open().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async open(): Promise<LibvirtConnection> {
    let conn: LibvirtConnection;
    try {
      conn = await LibvirtConnection.open({
        socketPath: this.socketPath,
        uri: serverUri(this.options.uri),
        connectTimeoutMs: this.options.connectTimeoutMs,
        callTimeoutMs: this.options.callTimeoutMs,
      });
    } catch (err) {
      throw this.translate(err, '');
    }
    this.conn = conn;
    this.connectedAt = Date.now();
    conn.onEvent((m) => {
      for (const l of this.eventListeners) l(m);
    });
    conn.onClose((err) => {
      if (this.conn === conn) this.conn = null;
      if (this.closed) return;
      this.options.logger.warn({ err: err.message }, 'libvirt connection lost');
      if (this.eventsWanted) this.scheduleReconnect();
    });
    if (this.eventsWanted) {
      try {
        await this.subscribe(conn);
      } catch (err) {
        await conn.close();
        throw this.translate(err, '');
      }
    }
    this.options.logger.info({ uri: this.options.uri, socket: this.socketPath }, 'connected to libvirtd');
    return conn;
  }

  /** Keeps a connection with a lifecycle-event subscription open from now on (reconnecting as needed). */
  async startEvents(): Promise<void> {
    if (this.eventsWanted) return;
    this.eventsWanted = true;
    const conn = await this.connection();
    // A connection opened before events were wanted is not registered yet.
    if (!this.registered.has(conn)) {
      await this.subscribe(conn).catch((err: unknown) => {
        throw this.translate(err, '');
      });
    }
  }

  /** Lifecycle and device events, then QEMU's monitor events, else libvirt's reboot events as the run-event source. */
  private async subscribe(conn: LibvirtConnection): Promise<void> {
    await registerLifecycleEvents(conn);
    await registerDeviceEvents(conn);
    if (this.options.monitorEvents !== undefined) {
      try {
        await registerMonitorEvents(conn, this.options.monitorEvents);
        this.runSources.set(conn, 'monitor');
      } catch (err) {
        if (!(err instanceof LibvirtRpcError)) throw err;
        this.options.logger.warn({ err: err.message }, 'libvirtd refuses QEMU monitor events; guest run events come from lifecycle events, without QEMU\'s reasons');
        await registerRebootEvents(conn);
        this.runSources.set(conn, 'lifecycle');
      }
    }
    if (!this.registered.has(conn)) this.generations.set(conn, this.nextGeneration++);
    this.registered.add(conn);
  }

  /** Where the live connection's run events come from; null while no subscribed connection is live. */
  runEventSource(): RunEventSource | null {
    const conn = this.conn;
    if (!conn || conn.isClosed || !this.registered.has(conn)) return null;
    return this.runSources.get(conn) ?? null;
  }

  /**
   * The generation of the live connection whose lifecycle events we receive, or null when there is none
   * (events not wanted yet, or libvirtd gone): while it stays the same, no event has been missed.
   */
  liveEventGeneration(): number | null {
    const conn = this.conn;
    if (!conn || conn.isClosed || !this.registered.has(conn)) return null;
    return this.generations.get(conn) ?? null;
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.closed) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 30_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connection()
        .then(() => {
          this.reconnectDelay = this.options.reconnectDelayMs ?? 500;
          this.options.logger.info('libvirt event stream re-established');
        })
        .catch((err: unknown) => {
          this.options.logger.warn({ err: (err as Error).message, retryInMs: this.reconnectDelay }, 'libvirtd still unreachable');
          this.scheduleReconnect();
        });
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Every event message of the subscribed connections (lifecycle, reboot, QEMU monitor events). */
  onEvent(listener: (m: EventMessage) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Runs fn on the connection, translating every libvirt failure into a Nova exception. */
  async call<T>(instanceId: string, fn: (c: LibvirtConnection) => Promise<T>): Promise<T> {
    const conn = await this.connection();
    try {
      return await fn(conn);
    } catch (err) {
      throw this.translate(err, instanceId);
    }
  }

  /** Finds a domain by name, then by uuid when the caller knows one; InstanceNotFound otherwise. */
  async lookup(name: string, uuid?: string): Promise<DomainHandle> {
    const id = uuid ?? name;
    return this.call(id, async (c) => {
      try {
        return await c.lookupByName(name);
      } catch (err) {
        const raw = uuid ? uuidFromString(uuid) : null;
        if (err instanceof LibvirtRpcError && err.code === ErrorCode.NO_DOMAIN && raw) return c.lookupByUuid(raw);
        throw err;
      }
    });
  }

  translate(err: unknown, instanceId: string): Error {
    if (err instanceof NovaException) return err;
    if (err instanceof LibvirtConnectionError) return new HypervisorUnavailable(this.hostName, err.message, { cause: err });
    if (err instanceof LibvirtTimeoutError) {
      return new MonitorTimeout(instanceId || this.options.uri, err.timeoutMs / 1000, { cause: err });
    }
    if (err instanceof LibvirtRpcError) {
      if (err.code === ErrorCode.NO_DOMAIN) return new InstanceNotFound(instanceId, { cause: err });
      if (err.code === ErrorCode.OPERATION_INVALID && /not running|is not active/.test(err.message)) {
        return new InstanceNotRunning(instanceId, { cause: err });
      }
      if (err.code === ErrorCode.OPERATION_TIMEOUT) return new MonitorTimeout(instanceId, this.options.callTimeoutMs / 1000, { cause: err });
      return new InternalError(`libvirt: ${err.message}`, { cause: err });
    }
    return new InternalError(`libvirt: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const conn = this.conn ?? (await this.opening?.catch(() => null)) ?? null;
    this.conn = null;
    await conn?.close();
  }
}
