// Errors raised by the QMP client. They say what went wrong on the monitor (QEMU refused, no answer in
// time, connection gone, could not connect) and carry the facts a caller needs to decide what to do;
// mapping them to Nova exceptions is the driver's business, not this package's.

/** QEMU answered a command with `{"error": {"class": ..., "desc": ...}}`. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP command '${command}' failed: ${errorClass}: ${desc}`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/**
 * No reply within the command's timeout. The connection stays usable; a late reply is discarded.
 * `unresponsive` is set when the monitor did not answer the liveness ping that followed a timeout either:
 * the command was then refused at once (never written), until QEMU speaks again.
 */
export class QmpTimeoutError extends Error {
  override readonly name = 'QmpTimeoutError';
  readonly command: string;
  readonly timeoutMs: number;
  readonly unresponsive: boolean;

  constructor(command: string, timeoutMs: number, unresponsive = false) {
    super(
      unresponsive
        ? `QMP command '${command}' not run: the monitor is unresponsive (no reply to a liveness ping after a timeout)`
        : `QMP command '${command}' got no reply within ${timeoutMs} ms`,
    );
    this.command = command;
    this.timeoutMs = timeoutMs;
    this.unresponsive = unresponsive;
  }
}

/** The connection is gone (socket closed or reset, QEMU died, protocol error, or closed by us). */
export class QmpDisconnectedError extends Error {
  override readonly name = 'QmpDisconnectedError';
  readonly reason: string;
  /** The command that was pending or attempted, when there was one. */
  readonly command?: string;

  constructor(reason: string, command?: string) {
    super(command === undefined ? `QMP connection closed: ${reason}` : `QMP command '${command}' aborted, connection closed: ${reason}`);
    this.reason = reason;
    if (command !== undefined) this.command = command;
  }
}

/**
 * Could not establish a session: the socket is missing (code ENOENT) or refuses (ECONNREFUSED), no greeting
 * arrived in time (code ETIMEDOUT; typically another client holds the monitor), the greeting was not QMP,
 * or capabilities negotiation failed.
 */
export class QmpConnectError extends Error {
  override readonly name = 'QmpConnectError';
  readonly socketPath: string;
  readonly code?: string;

  constructor(socketPath: string, message: string, code?: string, cause?: unknown) {
    super(`QMP connect to ${socketPath} failed: ${message}`, cause === undefined ? undefined : { cause });
    this.socketPath = socketPath;
    if (code !== undefined) this.code = code;
  }
}

/** QEMU answered, but not in the shape the command's reply has: a QEMU we do not understand, or not QEMU. */
export class QmpReplyError extends Error {
  override readonly name = 'QmpReplyError';
  readonly command: string;

  constructor(command: string, problem: string) {
    super(`QMP command '${command}' returned an unexpected reply: ${problem}`);
    this.command = command;
  }
}
