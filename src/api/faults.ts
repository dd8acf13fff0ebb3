// Nova's error answers: the `{"<faultName>": {"code", "message"}}` body its FaultWrapper writes, the
// mapping from compute exceptions (local or arriving over RPC) to status codes, and webob's plain
// error pages, which Nova returns for unrouted paths and oversized bodies (no fault wrapper there).

import { NovaException } from '../exception.js';
import { RemoteError } from '../rpc/failure.js';
import { MessagingTimeout } from '../rpc/client.js';

const FAULT_NAMES: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export function faultName(code: number): string {
  return FAULT_NAMES[code] ?? 'computeFault';
}

/** An error answered with Nova's fault body. */
export class ApiFault extends Error {
  override readonly name = 'ApiFault';
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): Record<string, { code: number; message: string }> {
    return { [faultName(this.status)]: { code: this.status, message: this.message } };
  }
}

export const badRequest = (message: string) => new ApiFault(400, message);
export const notFound = (message = 'The resource could not be found.') => new ApiFault(404, message);
export const conflict = (message: string) => new ApiFault(409, message);
export const forbidden = (rule: string) => new ApiFault(403, `Policy doesn't allow ${rule} to be performed.`);
export const featureNotSupported = () => new ApiFault(501, 'The requested functionality is not supported.');

/** Nova's webob 500 for exceptions no controller expected. */
export function unexpectedApiError(className: string, detail?: string): ApiFault {
  const support = 'Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.';
  return new ApiFault(500, `Unexpected API Error. ${detail ? `${detail} ` : ''}${support}\n<class '${className}'>`);
}

/** The remote (or local) exception's class name and kwargs, however it reached us. */
function describe(err: unknown): { cls: string; kwargs: Record<string, unknown>; message: string } | null {
  if (err instanceof RemoteError) return { cls: err.excType, kwargs: err.kwargs, message: err.value || err.excType };
  if (err instanceof NovaException) return { cls: err.className, kwargs: err.kwargs, message: err.message };
  return null;
}

/** Nova's raise_http_conflict_for_instance_invalid_state. */
export function invalidStateConflict(kwargs: Record<string, unknown>, op: string, serverId: string): ApiFault {
  const attr = kwargs['attr'];
  const state = kwargs['state'];
  if (attr !== undefined && attr !== null && state !== undefined) {
    return conflict(`Cannot '${op}' instance ${serverId} while it is in ${String(attr)} ${pyStr(state)}`);
  }
  return conflict(`Instance ${serverId} is in an invalid state for '${op}'`);
}

/**
 * What Nova's controllers answer for an exception raised by the compute API or a compute host while
 * running `op` on server `serverId`. RPC timeouts become a 500 that says which host did not answer.
 */
export function faultFromError(err: unknown, op: string, serverId: string, timeoutInfo?: { host: string; seconds: number }): ApiFault {
  if (err instanceof ApiFault) return err;
  if (err instanceof MessagingTimeout) {
    const where = timeoutInfo ? `Compute host ${timeoutInfo.host} did not answer within ${timeoutInfo.seconds} s.` : 'A compute host did not answer in time.';
    return unexpectedApiError('oslo_messaging.exceptions.MessagingTimeout', where);
  }
  const d = describe(err);
  if (d === null) return unexpectedApiError(err instanceof Error ? err.name : typeof err);
  switch (d.cls) {
    case 'InstanceNotFound':
    case 'ConsoleNotAvailable':
      return notFound(d.message);
    case 'InstanceInvalidState':
      return invalidStateConflict(d.kwargs, op, serverId);
    case 'InstanceNotReady':
    case 'InstanceIsLocked':
    case 'InstanceNotRunning':
      return conflict(d.message);
    case 'ConsoleTypeInvalid':
    case 'ConsoleTypeUnavailable':
    case 'Invalid':
    case 'ValidationError':
      return badRequest(d.message);
    case 'NotImplementedError':
      return featureNotSupported();
    case 'PolicyNotAuthorized':
    case 'Forbidden':
      return new ApiFault(403, d.message);
    default:
      return unexpectedApiError(`${err instanceof RemoteError && err.module ? `${err.module}.` : 'nova.exception.'}${d.cls}`);
  }
}

/** Python's str() of a JSON value, as Nova's messages print kwargs (None, True). */
export function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

// --- webob's generated error pages -----------------------------------------------------------------

export interface PlainErrorPage {
  contentType: string;
  body: string;
}

const TITLES: Record<number, string> = { 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Request Entity Too Large', 400: 'Bad Request' };

interface MediaRange {
  type: string;
  q: number;
}

function parseAccept(header: string): MediaRange[] {
  return header
    .split(',')
    .map((part) => {
      const [type, ...params] = part.trim().split(';');
      let q = 1;
      for (const p of params) {
        const [k, v] = p.trim().split('=');
        if (k?.trim() === 'q' && v !== undefined) q = Number.parseFloat(v);
      }
      return { type: (type ?? '').trim().toLowerCase(), q: Number.isFinite(q) ? q : 0 };
    })
    .filter((r) => r.type.length > 0);
}

function offerQuality(ranges: MediaRange[], offer: string): number {
  const [type] = offer.split('/');
  let best = -1;
  let specificity = -1;
  for (const r of ranges) {
    const s = r.type === offer ? 2 : r.type === `${type}/*` ? 1 : r.type === '*/*' ? 0 : -1;
    if (s > specificity) {
      specificity = s;
      best = r.q;
    }
  }
  return specificity < 0 ? 0 : best;
}

/** webob's choice between text/html and application/json, else text/plain (an absent Accept included). */
export function webobMediaType(accept: string | undefined): 'text/html' | 'application/json' | 'text/plain' {
  const ranges = parseAccept(accept ?? '');
  let chosen: 'text/html' | 'application/json' | 'text/plain' = 'text/plain';
  let bestQ = 0;
  for (const offer of ['text/html', 'application/json'] as const) {
    const q = offerQuality(ranges, offer);
    if (q > bestQ) {
      bestQ = q;
      chosen = offer;
    }
  }
  return chosen;
}

/** The page webob's HTTPException renders for `status` with `explanation`, for the given Accept header. */
export function webobErrorPage(status: number, explanation: string, accept: string | undefined): PlainErrorPage {
  const title = TITLES[status] ?? 'Error';
  const statusLine = `${status} ${title}`;
  const media = webobMediaType(accept);
  if (media === 'application/json') {
    const message = `${explanation}<br /><br />\n\n\n`;
    return { contentType: 'application/json', body: JSON.stringify({ code: statusLine, message, title }) };
  }
  if (media === 'text/html') {
    const escaped = explanation.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
    const body = `<html>\n <head>\n  <title>${statusLine}</title>\n </head>\n <body>\n  <h1>${statusLine}</h1>\n  ${escaped}<br /><br />\n\n\n\n </body>\n</html>`;
    return { contentType: 'text/html; charset=UTF-8', body };
  }
  return { contentType: 'text/plain; charset=UTF-8', body: `${statusLine}\n\n${explanation}\n\n   ` };
}
