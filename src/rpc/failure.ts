// oslo's failure format: how a server's exception crosses the wire (`failure` of a reply, itself a JSON string)
// and how our client turns one back into an error. Nova exceptions keep their module, class and kwargs so a
// Python caller re-raises the real class; anything else becomes nova.exception.InternalError with a safe message.

import { NovaException } from '../exception.js';
import { pyJsonDumps } from './envelope.js';

export interface FailurePayload {
  class: string;
  module: string;
  message: string;
  tb: string[];
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/**
 * The traceback we send. A real one would show our file paths and tell a Python operator nothing; oslo only
 * appends it to the message text, so a fixed two-line stub keeps the format without leaking anything.
 */
export const FAILURE_TRACEBACK: readonly string[] = Object.freeze(['Traceback (most recent call last):\n', '  (frames omitted)\n']);

/**
 * An error that names its own Python class, for failures that are not Nova's (oslo's dispatcher errors,
 * builtins.ValueError for malformed requests). `args` defaults to [message], as Python's Exception has.
 */
export class WireException extends Error {
  readonly args: unknown[];
  constructor(
    readonly module: string,
    readonly className: string,
    message: string,
    readonly kwargs: Record<string, unknown> = {},
    args?: unknown[],
  ) {
    super(message);
    this.args = args ?? [message];
  }
  override get name(): string {
    return this.className;
  }
}

/** Serialised as builtins.ValueError, which every Python oslo client re-raises (builtins are always allowed). */
export class MalformedMessage extends WireException {
  constructor(reason: string) {
    super('builtins', 'ValueError', `Malformed RPC message: ${reason}`);
  }
}

function safeErrorName(err: unknown): string {
  const name = err instanceof Error ? err.constructor.name || err.name : typeof err;
  return /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name) ? name : 'Error';
}

/** Map any thrown value to the failure structure. Unknown errors never reveal their message or stack. */
export function failureFromError(err: unknown): FailurePayload {
  if (err instanceof NovaException) {
    return { class: err.className, module: err.module, message: err.message, tb: [...FAILURE_TRACEBACK], args: [err.message], kwargs: { ...err.kwargs } };
  }
  if (err instanceof WireException) {
    return { class: err.className, module: err.module, message: err.message, tb: [...FAILURE_TRACEBACK], args: [...err.args], kwargs: { ...err.kwargs } };
  }
  // Nova's InternalError formats "%(err)s"; the text only names the error type, the log has the rest.
  const message = `Unexpected ${safeErrorName(err)} in novamon-compute; see the service log`;
  return { class: 'InternalError', module: 'nova.exception', message, tb: [...FAILURE_TRACEBACK], args: [message], kwargs: { err: message } };
}

/** The `failure` string of a reply, key order and spacing as oslo writes it. */
export function serializeFailure(err: unknown): string {
  return failureToString(failureFromError(err));
}

export function failureToString(f: FailurePayload): string {
  return pyJsonDumps({ class: f.class, module: f.module, message: f.message, tb: f.tb, args: f.args, kwargs: f.kwargs });
}

/** A failure returned by a remote server, as our client raises it. `value` is the remote message text. */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  constructor(
    readonly excType: string,
    readonly module: string,
    readonly value: string,
    readonly kwargs: Record<string, unknown> = {},
    readonly args: unknown[] = [],
    readonly tb: string[] = [],
  ) {
    super(value || excType);
  }

  /** True when the remote raised `module.className`, e.g. is('nova.exception', 'InstanceNotFound'). */
  is(module: string, className: string): boolean {
    return this.module === module && this.excType === className;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parse a reply's `failure` (a JSON string, or an already decoded object from odd peers) into a RemoteError. */
export function parseFailure(failure: unknown): RemoteError {
  let data: unknown = failure;
  if (typeof failure === 'string') {
    try {
      data = JSON.parse(failure);
    } catch {
      return new RemoteError('Unknown', '', `unparseable failure from the remote server: ${failure.slice(0, 200)}`);
    }
  }
  if (!isRecord(data)) return new RemoteError('Unknown', '', 'failure from the remote server is not an object');
  const s = (v: unknown): string => (typeof v === 'string' ? v : '');
  return new RemoteError(
    s(data['class']) || 'Unknown',
    s(data['module']),
    s(data['message']),
    isRecord(data['kwargs']) ? data['kwargs'] : {},
    Array.isArray(data['args']) ? data['args'] : [],
    Array.isArray(data['tb']) ? data['tb'].filter((l): l is string => typeof l === 'string') : [],
  );
}
