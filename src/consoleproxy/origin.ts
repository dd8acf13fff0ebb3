// The Origin check nova-novncproxy makes before it bridges: a browser's Origin must name one of the
// hostnames the console is served under (the base URL's host, the Host the request was sent to, the
// address the proxy listens on), and its scheme must fit the base URL's (Nova's verify_origin_proto).

export type OriginVerdict = { ok: true; scheme: string | null } | { ok: false; reason: string };

/** Lower-case hostname without IPv6 brackets, or null when `value` has none. */
export function normalizeHostname(value: string): string | null {
  const h = value.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h.length > 0 ? h : null;
}

/** The hostname part of a Host header (`example.org:6080`, `[::1]:6080`). */
export function hostHeaderHostname(host: string | undefined): string | null {
  if (!host) return null;
  try {
    return normalizeHostname(new URL(`http://${host.trim()}`).hostname);
  } catch {
    return null;
  }
}

/** Hostnames a console's page may be served under: the base URL's host plus any extra names. */
export function allowedOriginHostnames(baseUrl: string, extra: readonly string[]): Set<string> {
  const names = new Set<string>();
  const base = normalizeHostname(new URL(baseUrl).hostname);
  if (base) names.add(base);
  for (const e of extra) {
    const n = normalizeHostname(e);
    // A wildcard listen address names no host a browser could have loaded the page from.
    if (n && n !== '0.0.0.0' && n !== '::') names.add(n);
  }
  return names;
}

/**
 * Checks the Origin (or the pre-RFC 6455 Sec-WebSocket-Origin) header's hostname. As in Nova, a request
 * without either header passes: only browsers send one, and the token is what authorizes a client.
 */
export function checkOriginHost(originHeader: string | undefined, hostHeader: string | undefined, allowed: ReadonlySet<string>): OriginVerdict {
  if (originHeader === undefined) return { ok: true, scheme: null };
  let origin: URL;
  try {
    origin = new URL(originHeader);
  } catch {
    return { ok: false, reason: 'Origin header not valid' };
  }
  const hostname = normalizeHostname(origin.hostname);
  const scheme = origin.protocol.replace(/:$/, '').toLowerCase();
  if (hostname === null || scheme === '') return { ok: false, reason: 'Origin header not valid' };
  const requestHost = hostHeaderHostname(hostHeader);
  if (!allowed.has(hostname) && hostname !== requestHost) return { ok: false, reason: 'Origin header does not match this host' };
  return { ok: true, scheme };
}

/**
 * Nova's verify_origin_proto: the Origin's scheme is the base URL's, or for a WebSocket base URL (the
 * serial console's ws:// or wss://) the page's http or https of the same security. An http base URL
 * admits http Origins only, an https one https only.
 */
export function originSchemeMatches(originScheme: string, accessUrlBase: string): boolean {
  let base: string;
  try {
    base = new URL(accessUrlBase).protocol.replace(/:$/, '').toLowerCase();
  } catch {
    return false;
  }
  const expected = new Set([base]);
  if (base === 'ws') expected.add('http');
  if (base === 'wss') expected.add('https');
  return expected.has(originScheme);
}
