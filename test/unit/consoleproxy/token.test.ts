import { describe, expect, it } from 'vitest';
import { extractToken, plausibleToken } from '../../../src/consoleproxy/token.js';

describe('extractToken', () => {
  it('reads ?token= as Nova issues it', () => {
    expect(extractToken('/?token=abc-123')).toBe('abc-123');
    expect(extractToken('/websockify?token=abc')).toBe('abc');
  });

  it('reads the token inside a path parameter (the form in the URL get_vnc_console returns)', () => {
    expect(extractToken('/?path=%3Ftoken%3Dabc-123')).toBe('abc-123');
    expect(extractToken('/?path=websockify%3Ftoken%3Dxyz')).toBe('xyz');
  });

  it('turns the whole access URL of a novnc console into its token', () => {
    const token = '6f1b1e4a-8e8b-4a36-9f5c-2a0d9f0e1c77';
    const accessUrl = `http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3D${token}`;
    // noVNC takes `path` off the page URL and opens ws://host:port/<path>.
    const path = new URL(accessUrl).searchParams.get('path') ?? '';
    expect(extractToken(`/${path}`)).toBe(token);
    expect(extractToken(new URL(accessUrl).pathname + new URL(accessUrl).search)).toBe(token);
  });

  it('prefers ?token= over path and cookie', () => {
    expect(extractToken('/?token=a&path=%3Ftoken%3Db', 'token=c')).toBe('a');
    expect(extractToken('/?path=%3Ftoken%3Db', 'token=c')).toBe('b');
  });

  it('falls back to a token cookie', () => {
    expect(extractToken('/websockify', 'lang=en; token=cookie-tok')).toBe('cookie-tok');
    expect(extractToken('/websockify', 'token="quoted"')).toBe('quoted');
    expect(extractToken('/websockify', 'xtoken=no')).toBeNull();
  });

  it('gives null when there is no token at all', () => {
    expect(extractToken('/')).toBeNull();
    expect(extractToken('/?token=')).toBeNull();
    expect(extractToken('/?path=websockify')).toBeNull();
    expect(extractToken('/?path=%3Ftoken%3D')).toBeNull();
  });
});

describe('plausibleToken', () => {
  it('accepts uuids and rejects empty, huge or non-printable values', () => {
    expect(plausibleToken('6f1b1e4a-8e8b-4a36-9f5c-2a0d9f0e1c77')).toBe(true);
    expect(plausibleToken('')).toBe(false);
    expect(plausibleToken('x'.repeat(256))).toBe(false);
    expect(plausibleToken('a b')).toBe(false);
    expect(plausibleToken('a\nb')).toBe(false);
  });
});
