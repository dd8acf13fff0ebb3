// Where a console token travels on the WebSocket request: `?token=` (Nova's own form), inside a `path`
// parameter (`?path=%3Ftoken%3D…`, what a page URL carries and some clients forward as is), or a `token`
// cookie (older noVNC pages). Only extraction lives here; whether the token is good is the authorizer's job.

/** Nova's token column holds 255 characters at most; anything longer cannot be a token we issued. */
export const MAX_TOKEN_LENGTH = 255;

/**
 * The token a WebSocket upgrade request carries, or null when it carries none. `requestUrl` is the
 * request target (`/?token=…`, `/websockify?path=%3Ftoken%3D…`); `cookieHeader` the raw Cookie header.
 */
export function extractToken(requestUrl: string, cookieHeader?: string): string | null {
  let query: URLSearchParams;
  try {
    query = new URL(requestUrl, 'http://proxy.invalid').searchParams;
  } catch {
    return null;
  }
  const direct = query.get('token');
  if (direct) return direct;
  const fromPath = tokenInPath(query.get('path'));
  if (fromPath) return fromPath;
  return cookieHeader ? tokenInCookie(cookieHeader) : null;
}

/** `path` is itself a relative URL (`?token=x`, `websockify?token=x`); its own query names the token. */
function tokenInPath(path: string | null): string | null {
  if (!path) return null;
  const q = path.indexOf('?');
  if (q < 0) return null;
  return new URLSearchParams(path.slice(q + 1)).get('token') || null;
}

function tokenInCookie(header: string): string | null {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'token') continue;
    const raw = part.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    try {
      return decodeURIComponent(raw) || null;
    } catch {
      return raw || null;
    }
  }
  return null;
}

/** True when `token` could have been issued by novamon (printable ASCII, bounded length). */
export function plausibleToken(token: string): boolean {
  return token.length > 0 && token.length <= MAX_TOKEN_LENGTH && /^[\x21-\x7e]+$/.test(token);
}
