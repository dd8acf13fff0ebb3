import { describe, expect, it } from 'vitest';
import { allowedOriginHostnames, checkOriginHost, hostHeaderHostname, originSchemeMatches } from '../../../src/consoleproxy/origin.js';

describe('origin checks', () => {
  const allowed = allowedOriginHostnames('http://console.example.org:6080/vnc_auto.html', ['127.0.0.1', '0.0.0.0']);

  it('allows the base URL host and the listen address, never a wildcard', () => {
    expect([...allowed].sort()).toEqual(['127.0.0.1', 'console.example.org']);
  });

  it('accepts an Origin naming the base URL host, whatever its port', () => {
    expect(checkOriginHost('http://console.example.org:6080', 'proxy.internal:6080', allowed)).toEqual({ ok: true, scheme: 'http' });
    expect(checkOriginHost('https://CONSOLE.example.org', undefined, allowed)).toEqual({ ok: true, scheme: 'https' });
  });

  it('accepts an Origin naming the host the request was sent to (Nova compares with Host)', () => {
    expect(checkOriginHost('http://10.0.0.5:6080', '10.0.0.5:6080', allowed).ok).toBe(true);
    expect(checkOriginHost('http://[::1]:6080', '[::1]:6080', allowed).ok).toBe(true);
  });

  it('refuses another site', () => {
    const v = checkOriginHost('http://evil.example.com', 'console.example.org:6080', allowed);
    expect(v).toEqual({ ok: false, reason: 'Origin header does not match this host' });
  });

  it('refuses an Origin that is not a URL (null from sandboxed frames and file pages)', () => {
    expect(checkOriginHost('null', 'console.example.org:6080', allowed).ok).toBe(false);
    expect(checkOriginHost('garbage', undefined, allowed).ok).toBe(false);
  });

  it('lets non-browser clients without an Origin through (the token authorizes them)', () => {
    expect(checkOriginHost(undefined, undefined, allowed)).toEqual({ ok: true, scheme: null });
  });

  // noVNC's http(s) base URL admits the page's own scheme only; the serial console's ws(s) base URL also
  // the http(s) page of the same security that opens it.
  it.each([
    ['http', 'http://h:6080/vnc_auto.html', true],
    ['ws', 'http://h:6080/vnc_auto.html', false],
    ['https', 'http://h:6080/vnc_auto.html', false],
    ['https', 'https://h/vnc_auto.html', true],
    ['wss', 'https://h/vnc_auto.html', false],
    ['http', 'https://h/vnc_auto.html', false],
    ['http', 'ws://h:6083/', true],
    ['ws', 'ws://h:6083/', true],
    ['https', 'ws://h:6083/', false],
    ['https', 'wss://h:6083/', true],
    ['wss', 'wss://h:6083/', true],
    ['http', 'wss://h:6083/', false],
    ['http', 'not a url', false],
  ])('matches schemes as Nova verify_origin_proto does: %s Origin, base %s → %s', (scheme, base, ok) => {
    expect(originSchemeMatches(scheme, base)).toBe(ok);
  });

  it('parses Host headers', () => {
    expect(hostHeaderHostname('Example.org:6080')).toBe('example.org');
    expect(hostHeaderHostname('[::1]:6080')).toBe('::1');
    expect(hostHeaderHostname(undefined)).toBeNull();
  });
});
