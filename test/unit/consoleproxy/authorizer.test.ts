// The authorizer's decisions with in-memory stores: order of checks, what is refused, and what reaches
// the compute host's validate_console_port.

import { describe, expect, it } from 'vitest';
import { ConsoleAuthorizer, ConsoleRefused, type ConsolePortValidator } from '../../../src/consoleproxy/authorizer.js';
import { allowedOriginHostnames } from '../../../src/consoleproxy/origin.js';
import type { ConsoleAuthTokenRow } from '../../../src/db/console-auth-token-repository.js';
import { loadConfig } from '../../../src/config/loader.js';
import { CONSOLE_PAGE_PATHS } from '../../../src/consoleproxy/static.js';

const UUID = '11111111-2222-4333-8444-555555555555';
const row: ConsoleAuthTokenRow = {
  id: 1, tokenHash: 'h', consoleType: 'novnc', host: '192.0.2.10', port: 5901, internalAccessPath: null, instanceUuid: UUID,
  accessUrlBase: 'https://console.example.org/vnc_auto.html', expires: 0, createdAt: new Date(),
};

function authorizer(opts: { token?: ConsoleAuthTokenRow | null; host?: string | null; ports?: ConsolePortValidator } = {}) {
  const calls: string[] = [];
  const a = new ConsoleAuthorizer(
    { validate: async () => { calls.push('token'); return opts.token === undefined ? row : opts.token; } },
    { getByUuid: async () => { calls.push('instance'); return opts.host === null ? null : { host: opts.host ?? 'compute-1' }; } },
    opts.ports ?? { validate: async () => { calls.push('rpc'); return true; } },
    { consoleType: 'novnc', allowedOriginHostnames: allowedOriginHostnames('https://console.example.org/vnc_auto.html', ['0.0.0.0']), baseUrl: 'https://console.example.org/vnc_auto.html', lookupTimeoutMs: 200 },
  );
  return { a, calls };
}

async function refusal(p: Promise<unknown>): Promise<ConsoleRefused> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConsoleRefused) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('ConsoleAuthorizer', () => {
  it('returns the guest endpoint from the token row once everything checks out', async () => {
    const { a, calls } = authorizer();
    const t = await a.authorize({ token: 'tok', origin: 'https://console.example.org', host: 'console.example.org' });
    expect(t).toEqual({ instanceUuid: UUID, host: '192.0.2.10', port: 5901, internalAccessPath: null, consoleType: 'novnc' });
    expect(calls).toEqual(['token', 'instance', 'rpc']);
  });

  it('refuses a cross-site Origin without reading the database', async () => {
    const { a, calls } = authorizer();
    const r = await refusal(a.authorize({ token: 'tok', origin: 'https://evil.example.com', host: 'console.example.org' }));
    expect(r.reason).toBe('bad-origin');
    expect(calls).toEqual([]);
  });

  it('refuses an http Origin when the console is served over https, naming the instance', async () => {
    const { a } = authorizer();
    const r = await refusal(a.authorize({ token: 'tok', origin: 'http://console.example.org', host: 'console.example.org' }));
    expect(r.reason).toBe('bad-origin');
    expect(r.instanceUuid).toBe(UUID);
  });

  it('refuses an unknown or expired token (they look the same)', async () => {
    const { a } = authorizer({ token: null });
    const r = await refusal(a.authorize({ token: 'secret-9f2c', origin: undefined, host: undefined }));
    expect(r.reason).toBe('invalid-token');
    expect(r.instanceUuid).toBeNull();
    expect(r.message).not.toContain('secret-9f2c');
  });

  it('refuses a token of another console type before asking the compute host', async () => {
    const { a, calls } = authorizer({ token: { ...row, consoleType: 'serial' } });
    const r = await refusal(a.authorize({ token: 'tok', origin: undefined, host: undefined }));
    expect(r.reason).toBe('wrong-console-type');
    expect(calls).toEqual(['token']);
  });

  it('refuses when the instance has no compute host', async () => {
    const { a } = authorizer({ host: null });
    expect((await refusal(a.authorize({ token: 'tok', origin: undefined, host: undefined }))).reason).toBe('instance-unknown');
  });

  it('answers 503 when the compute host cannot be asked (RPC timeout)', async () => {
    const { a } = authorizer({ ports: { validate: async () => { throw new Error('MessagingTimeout'); } } });
    const r = await refusal(a.authorize({ token: 'tok', origin: undefined, host: undefined }));
    expect(r.reason).toBe('validation-failed');
    expect(r.status).toBe(503);
  });

  it('bounds a database lookup that does not answer', async () => {
    const a = new ConsoleAuthorizer(
      { validate: () => new Promise(() => undefined) },
      { getByUuid: async () => ({ host: 'h' }) },
      { validate: async () => true },
      { consoleType: 'novnc', allowedOriginHostnames: new Set(), baseUrl: 'http://x/', lookupTimeoutMs: 50 },
    );
    expect((await refusal(a.authorize({ token: 'tok', origin: undefined, host: undefined }))).status).toBe(503);
  });
});

describe('defaults', () => {
  it('fit together: with no [vnc] options the URL compute hands out points at the proxy\'s listener and page', () => {
    const config = loadConfig([], {});
    const base = new URL(config.vnc.novncproxy_base_url);
    expect(base.hostname).toBe(config.vnc.novncproxy_host);
    expect(Number(base.port)).toBe(config.vnc.novncproxy_port);
    expect(CONSOLE_PAGE_PATHS.has(base.pathname)).toBe(true);
    expect(allowedOriginHostnames(config.vnc.novncproxy_base_url, [config.vnc.novncproxy_host]).has(`${base.hostname}`)).toBe(true);
  });
});
