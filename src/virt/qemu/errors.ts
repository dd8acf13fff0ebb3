// Turns the QMP client's errors into what the driver contract promises: QEMU's own errors become
// MonitorCommandFailed, timeouts MonitorTimeout, a socket that drops mid-command InstanceNotRunning.
// "Nobody listens on the socket" becomes GuestOffline, which each driver method resolves its own way.

import { HypervisorUnavailable, MonitorCommandFailed, MonitorTimeout, InstanceNotRunning, NovaException } from '../../exception.js';
import { QmpConnectError, QmpDisconnectedError, QmpError, QmpReplyError, QmpTimeoutError } from '../../qmp/errors.js';

/**
 * The guest's QEMU is not there: the socket is missing (ENOENT) or nobody accepts on it (ECONNREFUSED,
 * a stale socket of a QEMU that died). Internal to the qemu driver; never leaves a public method.
 */
export class GuestOffline extends Error {
  constructor(
    readonly socketPath: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(`no QEMU on ${socketPath} (${code})`, options);
  }
  override get name(): string {
    return 'GuestOffline';
  }
}

const OFFLINE_CODES = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK', 'ECONNRESET', 'EPIPE']);

export interface ErrorContext {
  name: string;
  uuid?: string | null | undefined;
  socketPath: string;
  host: string;
  commandTimeoutMs: number;
}

/** Map an error thrown by the QMP client (or anything else) to the driver's error vocabulary. */
export function mapMonitorError(err: unknown, ctx: ErrorContext): Error {
  if (err instanceof NovaException || err instanceof GuestOffline) return err;
  if (err instanceof QmpError) return new MonitorCommandFailed(err.errorClass, err.desc, { cause: err });
  // A reply of the wrong shape is QEMU failing the command as far as anyone above can tell.
  if (err instanceof QmpReplyError) return new MonitorCommandFailed('InvalidReply', err.message, { cause: err });
  if (err instanceof QmpTimeoutError) return new MonitorTimeout(ctx.name, err.timeoutMs / 1000, { cause: err, unresponsive: err.unresponsive });
  if (err instanceof QmpDisconnectedError) return new InstanceNotRunning(ctx.uuid ?? ctx.name, { cause: err });
  if (err instanceof QmpConnectError) {
    const code = err.code ?? '';
    if (OFFLINE_CODES.has(code)) return new GuestOffline(ctx.socketPath, code, { cause: err });
    if (code === 'EACCES' || code === 'EPERM') {
      return new HypervisorUnavailable(ctx.host, `permission denied on monitor socket ${ctx.socketPath}`, { cause: err });
    }
    // The socket accepted but QEMU never greeted us (frozen, or another client holds the monitor).
    return new MonitorTimeout(ctx.name, ctx.commandTimeoutMs / 1000, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
