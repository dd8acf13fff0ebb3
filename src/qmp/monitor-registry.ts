// Exactly one QMP connection per monitor socket, shared by every caller: QEMU serves one client at a time,
// so a second connection would hang. Connections are made on demand, forgotten when they drop, and a drop
// nobody asked for is reported to subscribers as a synthesised SHUTDOWN so no one waits for a dead VM.

import { pino, type Logger } from 'pino';
import { QmpConnection, nowTimestamp, type QmpCommandOptions, type QmpEvent } from './connection.js';
import { QmpDisconnectedError } from './errors.js';

export type QmpEventListener = (socketPath: string, event: QmpEvent) => void;

export interface QmpMonitorRegistryOptions {
  /** Bound on connect + greeting + capabilities negotiation. */
  connectTimeoutMs: number;
  /** Timeout of execute()/hmp() calls that give none. */
  commandTimeoutMs: number;
  logger?: Logger;
}

export interface QmpMonitorStats {
  /** Live connections now. */
  connections: number;
  /** Commands run through execute()/hmp() since start (successful or not). */
  commands: number;
  /** Of those, the ones that failed (QEMU error, timeout, disconnect, connect failure). */
  errors: number;
  /** Events delivered to subscribers, synthesised ones included. */
  events: number;
}

interface ConnectAttempt {
  readonly abort: AbortController;
  readonly promise: Promise<QmpConnection>;
}

export class QmpMonitorRegistry {
  readonly #connectTimeoutMs: number;
  readonly #commandTimeoutMs: number;
  readonly #log: Logger;
  readonly #connections = new Map<string, QmpConnection>();
  readonly #attempts = new Map<string, ConnectAttempt>();
  readonly #listeners = new Set<QmpEventListener>();
  // Connections we closed on purpose (drop/closeAll): their 'close' is not a VM disappearing.
  readonly #closingOnPurpose = new WeakSet<QmpConnection>();
  #closed = false;
  #commands = 0;
  #errors = 0;
  #events = 0;

  constructor(opts: QmpMonitorRegistryOptions) {
    this.#connectTimeoutMs = opts.connectTimeoutMs;
    this.#commandTimeoutMs = opts.commandTimeoutMs;
    this.#log = opts.logger ?? pino({ level: 'silent' });
  }

  /**
   * The live connection for this socket, or a new one. Concurrent callers share one in-flight connect.
   * Rejects with QmpConnectError, or QmpDisconnectedError once closeAll() has run or when the socket is
   * dropped while connecting.
   */
  get(socketPath: string): Promise<QmpConnection> {
    const live = this.#connections.get(socketPath);
    if (live !== undefined && !live.closed) return Promise.resolve(live);
    const attempt = this.#attempts.get(socketPath);
    if (attempt !== undefined) return attempt.promise;
    if (this.#closed) return Promise.reject(new QmpDisconnectedError('monitor registry closed'));
    return this.#startConnect(socketPath).promise;
  }

  /** get() then execute, with the registry's commandTimeoutMs unless `opts.timeoutMs` is given. */
  async execute<T>(socketPath: string, command: string, args?: Record<string, unknown>, opts?: QmpCommandOptions): Promise<T> {
    this.#commands++;
    try {
      const conn = await this.get(socketPath);
      return await conn.execute<T>(command, args, { timeoutMs: opts?.timeoutMs ?? this.#commandTimeoutMs });
    } catch (err) {
      this.#errors++;
      throw err;
    }
  }

  /** HMP command line through `human-monitor-command`; resolves with its text output. */
  hmp(socketPath: string, commandLine: string, opts?: QmpCommandOptions): Promise<string> {
    return this.execute<string>(socketPath, 'human-monitor-command', { 'command-line': commandLine }, opts);
  }

  /** Receives the events of every connection, plus a synthesised SHUTDOWN when one drops unexpectedly. */
  subscribe(listener: QmpEventListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Closes and forgets one connection (or abandons its connect); no synthesised event. */
  async drop(socketPath: string): Promise<void> {
    const attempt = this.#attempts.get(socketPath);
    const conn = this.#connections.get(socketPath);
    this.#connections.delete(socketPath);
    const waits: Promise<unknown>[] = [];
    if (attempt !== undefined) {
      this.#attempts.delete(socketPath);
      attempt.abort.abort();
      waits.push(attempt.promise.catch(() => undefined));
    }
    if (conn !== undefined) {
      this.#closingOnPurpose.add(conn);
      waits.push(conn.close());
    }
    await Promise.all(waits);
  }

  /** The live connection to a socket, if there is one (no connect attempt). */
  connectionOf(socketPath: string): QmpConnection | null {
    const conn = this.#connections.get(socketPath);
    return conn && !conn.closed ? conn : null;
  }

  /** Whether a live connection to this socket exists (an in-flight connect does not count). */
  has(socketPath: string): boolean {
    return this.connectionOf(socketPath) !== null;
  }

  get size(): number {
    return this.#connections.size;
  }

  /** Closes every connection and abandons connects in flight; afterwards get() rejects. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    const paths = new Set([...this.#connections.keys(), ...this.#attempts.keys()]);
    await Promise.all([...paths].map((p) => this.drop(p)));
  }

  stats(): QmpMonitorStats {
    return { connections: this.#connections.size, commands: this.#commands, errors: this.#errors, events: this.#events };
  }

  #startConnect(socketPath: string): ConnectAttempt {
    const abort = new AbortController();
    const promise = QmpConnection.connect(socketPath, {
      connectTimeoutMs: this.#connectTimeoutMs,
      commandTimeoutMs: this.#commandTimeoutMs,
      signal: abort.signal,
      logger: this.#log.child({ socketPath }),
    }).then(
      (conn) => {
        if (this.#attempts.get(socketPath) === attempt) this.#attempts.delete(socketPath);
        // A garbage line right behind the capabilities reply can close the connection before we get here.
        if (conn.closed) throw new QmpDisconnectedError(conn.closeReason ?? 'closed');
        if (abort.signal.aborted) {
          this.#closingOnPurpose.add(conn);
          void conn.close();
          throw new QmpDisconnectedError('connection dropped while connecting');
        }
        this.#adopt(socketPath, conn);
        return conn;
      },
      (err: unknown) => {
        if (this.#attempts.get(socketPath) === attempt) this.#attempts.delete(socketPath);
        throw err;
      },
    );
    const attempt: ConnectAttempt = { abort, promise };
    this.#attempts.set(socketPath, attempt);
    return attempt;
  }

  #adopt(socketPath: string, conn: QmpConnection): void {
    this.#connections.set(socketPath, conn);
    this.#log.debug({ socketPath, qemu: conn.greeting.version.qemu }, 'QMP monitor connected');
    conn.on('event', (event) => this.#deliver(socketPath, event));
    conn.once('close', (reason) => {
      if (this.#connections.get(socketPath) === conn) this.#connections.delete(socketPath);
      if (this.#closingOnPurpose.has(conn)) return;
      this.#log.info({ socketPath, reason }, 'QMP monitor connection lost');
      this.#deliver(socketPath, { event: 'SHUTDOWN', data: { guest: false, reason: 'disconnect' }, timestamp: nowTimestamp() });
    });
  }

  #deliver(socketPath: string, event: QmpEvent): void {
    this.#events++;
    for (const listener of this.#listeners) {
      try {
        listener(socketPath, event);
      } catch (err) {
        this.#log.error({ socketPath, err, event: event.event }, 'QMP event subscriber threw');
      }
    }
  }
}
