// Who is calling: Nova's noauth2 (X-Auth-Token "user:project", development only) and Keystone token
// validation as keystonemiddleware does it (GET /v3/auth/tokens with a service token, validated tokens
// cached until min(expiry, token_cache_time)). Both produce the request context the API runs under.

import type { Counter } from 'prom-client';
import type { Logger } from '../logging.js';

/** The caller as authenticated. */
export interface Identity {
  userId: string;
  projectId: string | null;
  userName: string | null;
  projectName: string | null;
  roles: string[];
  isAdmin: boolean;
}

/** Either who the caller is, or the answer to send instead (401, noauth2's 204, 503). */
export type AuthOutcome =
  | { ok: true; identity: Identity }
  | { ok: false; status: number; headers: Record<string, string>; body: string; contentType: string | null };

export interface Authenticator {
  authenticate(headers: Record<string, string | string[] | undefined>, baseUrl: string): Promise<AuthOutcome>;
  close(): Promise<void>;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Nova's NoAuthMiddleware (noauth2): no token = 204 with a made-up one; admin iff the user is `admin`. */
export class NoAuth2Authenticator implements Authenticator {
  authenticate(headers: Record<string, string | string[] | undefined>, baseUrl: string): Promise<AuthOutcome> {
    const token = header(headers, 'x-auth-token');
    if (token === undefined) {
      const user = header(headers, 'x-auth-user') ?? 'admin';
      const project = header(headers, 'x-auth-project-id') ?? 'admin';
      return Promise.resolve({
        ok: false,
        status: 204,
        headers: { 'X-Auth-Token': `${user}:${project}`, 'X-Server-Management-Url': `${baseUrl}/v2.1/${project}` },
        body: '',
        contentType: 'text/plain; charset=UTF-8',
      });
    }
    const sep = token.indexOf(':');
    const userId = sep < 0 ? token : token.slice(0, sep);
    const projectId = (sep < 0 ? '' : token.slice(sep + 1)) || userId;
    const isAdmin = userId === 'admin';
    return Promise.resolve({
      ok: true,
      identity: { userId, projectId, userName: userId, projectName: projectId, roles: isAdmin ? ['admin'] : [], isAdmin },
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export interface KeystoneSettings {
  /** [keystone_authtoken] auth_url: where tokens are validated (with or without /v3). */
  authUrl: string;
  /** [keystone_authtoken] www_authenticate_uri: advertised in WWW-Authenticate (auth_url when empty). */
  wwwAuthenticateUri: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  /** Seconds a validated token stays cached (never past its expiry); 0 disables the cache. */
  tokenCacheTime: number;
  /** Bound on each Keystone request. */
  timeoutMs?: number;
  maxCacheEntries?: number;
}

interface CachedToken {
  identity: Identity;
  until: number;
}

class KeystoneUnavailable extends Error {}

/** Validates X-Auth-Token against Keystone v3 with a service token, caching results. */
export class KeystoneAuthenticator implements Authenticator {
  private readonly base: string;
  private readonly cache = new Map<string, CachedToken>();
  private serviceToken: { token: string; expiresAt: number } | null = null;
  private serviceTokenPending: Promise<string> | null = null;
  private readonly timeoutMs: number;
  private readonly maxEntries: number;
  /** Validations answered from the cache / by Keystone (tests and /metrics read these). */
  readonly stats = { hits: 0, validations: 0, rejected: 0 };

  constructor(
    private readonly settings: KeystoneSettings,
    private readonly log: Logger,
    private readonly counter?: Counter<'result'>,
    private readonly now: () => number = Date.now,
  ) {
    this.base = settings.authUrl.replace(/\/+$/, '').replace(/\/v3$/, '');
    this.timeoutMs = settings.timeoutMs ?? 10_000;
    this.maxEntries = settings.maxCacheEntries ?? 10_000;
  }

  async authenticate(headers: Record<string, string | string[] | undefined>): Promise<AuthOutcome> {
    const token = header(headers, 'x-auth-token');
    if (token === undefined || token.length === 0 || token.length > 8192) return this.reject();
    const cached = this.cache.get(token);
    if (cached && cached.until > this.now()) {
      this.stats.hits++;
      this.counter?.inc({ result: 'hit' });
      return { ok: true, identity: cached.identity };
    }
    if (cached) this.cache.delete(token);
    let result: { identity: Identity; expiresAt: number } | null;
    try {
      result = await this.validate(token);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'Keystone did not answer a token validation');
      this.counter?.inc({ result: 'error' });
      return {
        ok: false,
        status: 503,
        headers: {},
        body: JSON.stringify({ code: '503 Service Unavailable', message: 'The Keystone service is temporarily unavailable.<br /><br />\n\n\n', title: 'Service Unavailable' }),
        contentType: 'application/json',
      };
    }
    if (result === null) {
      this.stats.rejected++;
      this.counter?.inc({ result: 'invalid' });
      return this.reject();
    }
    this.stats.validations++;
    this.counter?.inc({ result: 'miss' });
    if (this.settings.tokenCacheTime > 0) {
      if (this.cache.size >= this.maxEntries) this.prune();
      this.cache.set(token, { identity: result.identity, until: Math.min(result.expiresAt, this.now() + this.settings.tokenCacheTime * 1000) });
    }
    return { ok: true, identity: result.identity };
  }

  close(): Promise<void> {
    this.cache.clear();
    return Promise.resolve();
  }

  private reject(): AuthOutcome {
    const uri = this.settings.wwwAuthenticateUri || this.settings.authUrl;
    return {
      ok: false,
      status: 401,
      headers: { 'WWW-Authenticate': `Keystone uri="${uri}"` },
      body: JSON.stringify({ error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } }),
      contentType: 'application/json; charset=UTF-8',
    };
  }

  private prune(): void {
    const now = this.now();
    for (const [k, v] of this.cache) if (v.until <= now) this.cache.delete(k);
    // Still full: drop the oldest entries (Map keeps insertion order).
    for (const k of this.cache.keys()) {
      if (this.cache.size < this.maxEntries) break;
      this.cache.delete(k);
    }
  }

  /** The token's identity, or null when Keystone says it is not valid (404/401 for the subject). */
  private async validate(token: string, retried = false): Promise<{ identity: Identity; expiresAt: number } | null> {
    const serviceToken = await this.getServiceToken();
    const res = await this.fetch(`${this.base}/v3/auth/tokens`, {
      method: 'GET',
      headers: { 'X-Auth-Token': serviceToken, 'X-Subject-Token': token, Accept: 'application/json' },
    });
    if (res.status === 401 && !retried) {
      // Our service token expired or was revoked: get a new one once.
      this.serviceToken = null;
      return this.validate(token, true);
    }
    if (res.status === 404 || res.status === 401 || res.status === 400) return null;
    if (res.status !== 200) throw new KeystoneUnavailable(`token validation answered ${res.status}`);
    return parseTokenBody(await res.json(), this.now());
  }

  private async getServiceToken(): Promise<string> {
    if (this.serviceToken && this.serviceToken.expiresAt - 60_000 > this.now()) return this.serviceToken.token;
    this.serviceTokenPending ??= this.issueServiceToken().finally(() => {
      this.serviceTokenPending = null;
    });
    return this.serviceTokenPending;
  }

  private async issueServiceToken(): Promise<string> {
    const s = this.settings;
    const body = {
      auth: {
        identity: { methods: ['password'], password: { user: { name: s.username, domain: { name: s.userDomainName }, password: s.password } } },
        scope: { project: { name: s.projectName, domain: { name: s.projectDomainName } } },
      },
    };
    const res = await this.fetch(`${this.base}/v3/auth/tokens?nocatalog`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    const token = res.headers.get('x-subject-token');
    if (res.status !== 201 || !token) throw new KeystoneUnavailable(`service user ${s.username} could not authenticate (HTTP ${res.status})`);
    const parsed = (await res.json()) as { token?: { expires_at?: string } };
    const expiresAt = Date.parse(parsed.token?.expires_at ?? '') || this.now() + 3600_000;
    this.serviceToken = { token, expiresAt };
    this.log.info({ user: s.username }, 'service token obtained from Keystone');
    return token;
  }

  private async fetch(url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new KeystoneUnavailable(`${url}: ${(err as Error).message}`);
    }
  }
}

interface TokenBody {
  token?: {
    expires_at?: string;
    user?: { id?: string; name?: string };
    project?: { id?: string; name?: string };
    roles?: { id?: string; name?: string }[];
  };
}

/** The identity in a Keystone v3 token body; null when it is expired or has no user. */
export function parseTokenBody(body: unknown, now: number): { identity: Identity; expiresAt: number } | null {
  const t = (body as TokenBody | null)?.token;
  if (!t?.user?.id) return null;
  const expiresAt = Date.parse(t.expires_at ?? '');
  if (!Number.isFinite(expiresAt) || expiresAt <= now) return null;
  const roles = (t.roles ?? []).map((r) => r.name).filter((n): n is string => typeof n === 'string');
  return {
    expiresAt,
    identity: {
      userId: t.user.id,
      userName: t.user.name ?? null,
      projectId: t.project?.id ?? null,
      projectName: t.project?.name ?? null,
      roles,
      isAdmin: roles.map((r) => r.toLowerCase()).includes('admin'),
    },
  };
}
