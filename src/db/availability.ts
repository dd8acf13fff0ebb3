// Tells "the database is not reachable now" apart from "this write is wrong": the first is waited out
// (spooled writes, cached reads), the second is the caller's error.

import { NovaException } from '../exception.js';

/** A read that needed the database while it was away, for an instance this process has not seen. */
export class DatabaseUnavailable extends NovaException {
  override readonly code = 503;
  constructor(what: string, options?: { cause?: unknown }) {
    super(`The database is unavailable: ${what}`, { err: 'database unavailable' }, options);
  }
  override get className(): string {
    return 'InternalError';
  }
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);
const UNAVAILABLE_TEXT =
  /Connection terminated|Timeout acquiring a connection|connection error|not queryable|ECONNREFUSED|ECONNRESET|database did not answer|the database system is (shutting down|starting up)|terminating connection|Query read timeout|connect ETIMEDOUT|Connection ended unexpectedly/i;

/** True for errors that mean "the database is not reachable now" rather than "this write is wrong". */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
    const name = (e as { name?: unknown }).name;
    if (name === 'KnexTimeoutError') return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && UNAVAILABLE_TEXT.test(message)) return true;
  }
  return false;
}
