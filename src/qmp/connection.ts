// One QMP session over a QEMU monitor UNIX socket: greeting and capabilities negotiation, commands
// matched with their replies in order (many in flight, each with its own timeout), and events dispatched
// separately. QEMU answers commands in the order it read them, so no command carries an id: QEMU's
// monitor reads its socket one byte at a time, and under TCG each byte costs it about 12 us of CPU, so
// the shortest command line is the cheapest (query-blockstats is 30 bytes bare, 43 with a counter id).
// When the socket goes away every pending command fails at once and 'close' is emitted once.
// A command that times out is followed by a cheap liveness ping (query-version) before its error is
// reported; if that goes unanswered too, the monitor is marked unresponsive and later commands fail at
// once, unwritten, until QEMU sends anything again (a frozen QEMU costs one timeout, not one per call).

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { pino, type Logger } from 'pino';
import { QmpConnectError, QmpDisconnectedError, QmpError, QmpTimeoutError } from './errors.js';
import { DEFAULT_MAX_LINE_LENGTH, QmpLineSplitter, commandLine, parseQmpLine, type QmpMessage } from './framing.js';
import { coalesceWrites } from '../coalesce-writes.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpConnectOptions {
  /** Bound on connect + greeting + qmp_capabilities together. */
  connectTimeoutMs: number;
  /** Timeout of execute()/hmp() calls that give none; default 30 s. */
  commandTimeoutMs?: number;
  /** Longest accepted line, in characters; default 10 MiB. A longer line closes the connection. */
  maxLineLength?: number;
  /** How long the liveness ping after a timeout may take; default min(commandTimeoutMs, 1 s). */
  livenessTimeoutMs?: number;
  /** Aborting gives up the connect attempt (QmpConnectError code ABORT_ERR) and destroys the socket. */
  signal?: AbortSignal;
  logger?: Logger;
}

export interface QmpCommandOptions {
  /** Milliseconds; 0 or a non-finite value means no timeout. */
  timeoutMs?: number;
}

interface PendingCommand {
  command: string;
  timeoutMs: number;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  /** Timed out: its caller has been answered, and its slot waits for QEMU's late reply. */
  abandoned: boolean;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_LIVENESS_TIMEOUT_MS = 1_000;
const LIVENESS_COMMAND = 'query-version';
// setTimeout fires at once for delays above 2^31-1 ms; clamp rather than surprise.
const MAX_TIMER_MS = 2_147_483_647;

let silent: Logger | undefined;
function silentLogger(): Logger {
  silent ??= pino({ level: 'silent' });
  return silent;
}

/** Events a QmpConnection emits: every QMP event, and 'close' exactly once with the reason. */
export type QmpConnectionEvents = { event: [event: QmpEvent]; close: [reason: string] };

export class QmpConnection extends EventEmitter<QmpConnectionEvents> {
  readonly socketPath: string;
  readonly greeting: QmpGreeting;
  readonly #socket: net.Socket;
  readonly #log: Logger;
  readonly #defaultTimeoutMs: number;
  readonly #livenessTimeoutMs: number;
  /** The outstanding liveness ping: resolves true when QEMU answered it in time. */
  #liveness: Promise<boolean> | undefined;
  #unresponsive = false;
  /** Commands written, in order, until their replies come (timed-out ones included). */
  #queue: PendingCommand[] = [];
  /** Commands in the queue whose callers still wait. */
  #waiting = 0;
  #closed = false;
  #closeReason: string | undefined;
  #socketClosed = false;

  /**
   * Opens the socket, waits for the greeting and negotiates capabilities, all within
   * `opts.connectTimeoutMs`. Rejects with QmpConnectError (code ENOENT, ECONNREFUSED, ETIMEDOUT when no
   * greeting comes — the usual sign that another client holds the monitor —, EPROTO for a bad greeting or
   * refused negotiation, ECONNRESET when the peer hangs up, ABORT_ERR when aborted).
   */
  static connect(socketPath: string, opts: QmpConnectOptions): Promise<QmpConnection> {
    const log = opts.logger ?? silentLogger();
    const maxLine = opts.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
    const deadline = Date.now() + opts.connectTimeoutMs;

    return new Promise<QmpConnection>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new QmpConnectError(socketPath, 'aborted', 'ABORT_ERR'));
        return;
      }
      const socket = net.createConnection({ path: socketPath });
      socket.setEncoding('utf8');
      let settled = false;
      let conn: QmpConnection | undefined;

      const finish = (err: QmpConnectError | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (err === undefined && conn !== undefined) {
          resolve(conn);
          return;
        }
        if (conn !== undefined) conn.#teardown('connect failed');
        else socket.destroy();
        log.debug({ socketPath, err }, 'QMP connect failed');
        reject(err);
      };
      const fail = (message: string, code?: string, cause?: unknown): void =>
        finish(new QmpConnectError(socketPath, message, code, cause));

      const onError = (err: NodeJS.ErrnoException): void => fail(err.message, err.code, err);
      const onClose = (): void => fail('socket closed before the QMP greeting', 'ECONNRESET');
      const onAbort = (): void => fail('aborted', 'ABORT_ERR');
      const onData = (chunk: string): void => {
        try {
          splitter.push(chunk);
        } catch (err) {
          const what = conn === undefined ? 'bad greeting' : 'protocol error during negotiation';
          fail(`${what}: ${(err as Error).message}`, 'EPROTO', err);
        }
      };
      const splitter = new QmpLineSplitter(maxLine, (line) => {
        const greeting = toGreeting(parseQmpLine(line));
        if (greeting === undefined) throw new Error(`first message is not a QMP greeting: ${line.slice(0, 120)}`);
        // Hand the socket over. The splitter keeps going with the connection's handler, so lines that
        // followed the greeting in the same chunk are not lost.
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        conn = new QmpConnection(socketPath, socket, splitter, greeting, opts, log);
        negotiate(conn);
      });

      const negotiate = (c: QmpConnection): void => {
        c.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, deadline - Date.now()) }).then(
          () => finish(undefined),
          (err: unknown) => {
            if (err instanceof QmpError) fail(`capabilities negotiation refused: ${err.errorClass}: ${err.desc}`, 'EPROTO', err);
            else if (err instanceof QmpTimeoutError) fail(`no reply to qmp_capabilities within ${opts.connectTimeoutMs} ms`, 'ETIMEDOUT', err);
            else if (err instanceof QmpDisconnectedError) fail(`disconnected during capabilities negotiation: ${err.reason}`, 'ECONNRESET', err);
            else fail(String(err), undefined, err);
          },
        );
      };

      const timer = setTimeout(
        () =>
          conn === undefined
            ? fail(`no QMP greeting within ${opts.connectTimeoutMs} ms (is another client connected to this monitor?)`, 'ETIMEDOUT')
            : fail(`no reply to qmp_capabilities within ${opts.connectTimeoutMs} ms`, 'ETIMEDOUT'),
        Math.min(Math.max(0, opts.connectTimeoutMs), MAX_TIMER_MS),
      );
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });
  }

  private constructor(
    socketPath: string,
    socket: net.Socket,
    splitter: QmpLineSplitter,
    greeting: QmpGreeting,
    opts: QmpConnectOptions,
    log: Logger,
  ) {
    super();
    this.socketPath = socketPath;
    this.greeting = greeting;
    this.#socket = socket;
    // Commands issued in the same tick (a diagnostics call pipelines several) leave in one write.
    coalesceWrites(socket);
    this.#log = log;
    this.#defaultTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#livenessTimeoutMs = opts.livenessTimeoutMs ?? Math.min(this.#defaultTimeoutMs, DEFAULT_LIVENESS_TIMEOUT_MS);
    splitter.onLine = this.#onLine;
    socket.on('data', (chunk: string) => {
      try {
        splitter.push(chunk);
      } catch (err) {
        this.#log.warn({ socketPath, err }, 'QMP protocol error, closing the connection');
        this.#teardown(`protocol error: ${(err as Error).message}`);
      }
    });
    socket.on('end', () => this.#teardown('monitor closed the connection'));
    // Kept for the socket's whole life: an 'error' without a listener would crash the process.
    socket.on('error', (err: NodeJS.ErrnoException) => this.#teardown(`socket error: ${err.code ?? err.message}`));
    socket.on('close', () => {
      this.#socketClosed = true;
      this.#teardown('socket closed');
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Why the connection closed, once it has. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** True after a timeout whose liveness ping went unanswered, until QEMU sends anything again. */
  get unresponsive(): boolean {
    return this.#unresponsive;
  }

  /** Commands written and not yet answered (or timed out). */
  get pendingCount(): number {
    return this.#waiting;
  }

  /**
   * Runs a QMP command. Resolves with its `return` value; rejects with QmpError (QEMU refused),
   * QmpTimeoutError (no reply in time; the connection stays usable; `unresponsive` when the monitor is
   * known to be frozen, in which case the command was not sent) or QmpDisconnectedError.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: QmpCommandOptions): Promise<T> {
    if (this.#closed) return Promise.reject(new QmpDisconnectedError(this.#closeReason ?? 'closed', command));
    if (this.#unresponsive) return Promise.reject(new QmpTimeoutError(command, opts?.timeoutMs ?? this.#defaultTimeoutMs, true));
    let line: string;
    try {
      line = commandLine(command, args);
    } catch (err) {
      // BigInt, a cycle, or a line QEMU could not take: the caller's bug, reported without touching the connection.
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const timeoutMs = opts?.timeoutMs ?? this.#defaultTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCommand = { command, timeoutMs, resolve: resolve as (v: unknown) => void, reject, timer: undefined, abandoned: false };
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        pending.timer = setTimeout(this.#onTimeout, Math.min(timeoutMs, MAX_TIMER_MS), pending);
      }
      this.#send(pending, line);
    });
  }

  #send(pending: PendingCommand, line: string): void {
    this.#queue.push(pending);
    this.#waiting++;
    this.#socket.write(line);
  }

  /** Runs an HMP command line through `human-monitor-command`; resolves with its CRLF text output. */
  hmp(commandLine: string, opts?: QmpCommandOptions): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, opts);
  }

  /** Rejects pending commands with QmpDisconnectedError, destroys the socket, and waits for it to close. */
  async close(): Promise<void> {
    this.#teardown('connection closed by client');
    if (!this.#socketClosed) {
      await new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    }
  }

  #onTimeout = (pending: PendingCommand): void => {
    if (pending.abandoned || this.#closed) return;
    pending.abandoned = true;
    this.#waiting--;
    this.#log.warn({ socketPath: this.socketPath, command: pending.command, timeoutMs: pending.timeoutMs }, 'QMP command timed out');
    // Ask whether the monitor is alive before reporting: a slow command and a frozen QEMU differ.
    void this.#checkLiveness().then((alive) => pending.reject(new QmpTimeoutError(pending.command, pending.timeoutMs, !alive)));
  };

  /** One query-version at a time; true when QEMU answers it within the liveness timeout. */
  #checkLiveness(): Promise<boolean> {
    if (this.#unresponsive || this.#closed) return Promise.resolve(false);
    this.#liveness ??= new Promise<boolean>((resolve) => {
      let settled = false;
      const done = (alive: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#liveness = undefined;
        if (!alive && !this.#closed) {
          this.#unresponsive = true;
          this.#log.warn({ socketPath: this.socketPath, timeoutMs: this.#livenessTimeoutMs }, 'QMP monitor unresponsive: commands fail at once until it answers again');
        }
        resolve(alive);
      };
      const timer = setTimeout(() => done(false), Math.min(Math.max(1, this.#livenessTimeoutMs), MAX_TIMER_MS));
      // No timer on the pending entry: its reply, however late, is what proves QEMU is back.
      const ping: PendingCommand = { command: LIVENESS_COMMAND, timeoutMs: 0, resolve: () => done(true), reject: () => done(false), timer: undefined, abandoned: false };
      this.#send(ping, commandLine(LIVENESS_COMMAND, undefined));
    });
    return this.#liveness;
  }

  #onLine = (line: string): void => {
    if (this.#closed) return;
    if (this.#unresponsive) {
      this.#unresponsive = false;
      this.#log.warn({ socketPath: this.socketPath }, 'QMP monitor answers again');
    }
    const msg = parseQmpLine(line);
    if (typeof msg['event'] === 'string') {
      this.#dispatchEvent(msg);
      return;
    }
    if ('return' in msg || 'error' in msg) {
      this.#dispatchReply(msg);
      return;
    }
    this.#log.warn({ socketPath: this.socketPath, line: line.slice(0, 200) }, 'QMP message that is neither reply nor event, ignored');
  };

  #dispatchReply(msg: QmpMessage): void {
    if ('id' in msg) {
      // QEMU echoes only the ids it was sent, and novamon sends none: not an answer to us.
      this.#log.warn({ socketPath: this.socketPath, id: msg['id'] }, 'QMP reply with an id novamon never sent, ignored');
      return;
    }
    const pending = this.#queue.shift();
    if (pending === undefined) {
      this.#log.warn({ socketPath: this.socketPath }, 'QMP reply with no command waiting, ignored');
      return;
    }
    if (pending.abandoned) {
      this.#log.debug({ socketPath: this.socketPath, command: pending.command }, 'late QMP reply discarded');
      return;
    }
    this.#waiting--;
    if (pending.timer !== undefined) clearTimeout(pending.timer);
    if ('error' in msg) {
      const e = msg['error'] as { class?: unknown; desc?: unknown } | null;
      const cls = typeof e?.class === 'string' ? e.class : 'GenericError';
      const desc = typeof e?.desc === 'string' ? e.desc : JSON.stringify(e);
      pending.reject(new QmpError(pending.command, cls, desc));
    } else {
      pending.resolve(msg['return']);
    }
  }

  #dispatchEvent(msg: QmpMessage): void {
    const ts = msg['timestamp'] as QmpEvent['timestamp'] | undefined;
    const event: QmpEvent = {
      event: msg['event'] as string,
      timestamp: ts !== undefined && typeof ts === 'object' && ts !== null ? ts : nowTimestamp(),
    };
    const data = msg['data'];
    if (data !== undefined && data !== null && typeof data === 'object') event.data = data as Record<string, unknown>;
    try {
      this.emit('event', event);
    } catch (err) {
      // A listener's bug must not look like a protocol error and kill the session.
      this.#log.error({ socketPath: this.socketPath, err, event: event.event }, 'QMP event listener threw');
    }
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#socket.destroy();
    const queue = this.#queue;
    const rejected = this.#waiting;
    this.#queue = [];
    this.#waiting = 0;
    for (const p of queue) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      if (!p.abandoned) p.reject(new QmpDisconnectedError(reason, p.command));
    }
    this.#log.debug({ socketPath: this.socketPath, reason, rejected }, 'QMP connection closed');
    try {
      this.emit('close', reason);
    } catch (err) {
      this.#log.error({ socketPath: this.socketPath, err }, 'QMP close listener threw');
    }
  }
}

/** The current time in QMP's event timestamp form. */
export function nowTimestamp(): QmpEvent['timestamp'] {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), microseconds: (ms % 1000) * 1000 };
}

function toGreeting(msg: QmpMessage): QmpGreeting | undefined {
  const qmp = msg['QMP'] as { version?: { qemu?: Record<string, unknown>; package?: unknown }; capabilities?: unknown } | undefined;
  if (qmp === undefined || qmp === null || typeof qmp !== 'object') return undefined;
  const qemu = qmp.version?.qemu;
  const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return {
    version: {
      qemu: { major: num(qemu?.['major']), minor: num(qemu?.['minor']), micro: num(qemu?.['micro']) },
      package: typeof qmp.version?.package === 'string' ? qmp.version.package : '',
    },
    capabilities: Array.isArray(qmp.capabilities) ? qmp.capabilities.filter((c): c is string => typeof c === 'string') : [],
  };
}
