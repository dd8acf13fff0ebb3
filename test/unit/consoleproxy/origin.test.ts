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

  it('matches schemes as Nova verify_origin_proto does', () => {
    // noVNC's http(s) base URL: the page's own scheme only.
    expect(originSchemeMatches('http', 'http://h:6080/vnc_auto.html')).toBe(true);
    expect(originSchemeMatches('ws', 'http://h:6080/vnc_auto.html')).toBe(false);
    expect(originSchemeMatches('https', 'http://h:6080/vnc_auto.html')).toBe(false);
    expect(originSchemeMatches('https', 'https://h/vnc_auto.html')).toBe(true);
    expect(originSchemeMatches('wss', 'https://h/vnc_auto.html')).toBe(false);
    expect(originSchemeMatches('http', 'https://h/vnc_auto.html')).toBe(false);
    // The serial console's ws(s) base URL: also the http(s) page of the same security that opens it.
    expect(originSchemeMatches('http', 'ws://h:6083/')).toBe(true);
    expect(originSchemeMatches('ws', 'ws://h:6083/')).toBe(true);
    expect(originSchemeMatches('https', 'ws://h:6083/')).toBe(false);
    expect(originSchemeMatches('https', 'wss://h:6083/')).toBe(true);
    expect(originSchemeMatches('wss', 'wss://h:6083/')).toBe(true);
    expect(originSchemeMatches('http', 'wss://h:6083/')).toBe(false);
    expect(originSchemeMatches('http', 'not a url')).toBe(false);
  });

  it('parses Host headers', () => {
    expect(hostHeaderHostname('Example.org:6080')).toBe('example.org');
    expect(hostHeaderHostname('[::1]:6080')).toBe('::1');
    expect(hostHeaderHostname(undefined)).toBeNull();
  });
});
