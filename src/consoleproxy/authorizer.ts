// Decides whether a WebSocket request may reach a guest's console, in nova-novncproxy's order: the token
// (sha256 lookup, not expired, issued for this console type), the Origin, then the compute host that owns
// the instance confirms over RPC that the port is still that guest's console. Every refusal names the
// instance when one is known, never the token.

import type { ConsoleAuthTokenRepository } from '../db/console-auth-token-repository.js';
import type { InstanceRow } from '../db/instance-repository.js';
import { checkOriginHost, originSchemeMatches } from './origin.js';
import { plausibleToken } from './token.js';

/** Where a validated console connection goes. */
export interface ConsoleTarget {
  instanceUuid: string;
  host: string;
  port: number;
  /** Sent as `CONNECT <path> HTTP/1.1` before bridging when set (Nova's internal_access_path). */
  internalAccessPath: string | null;
  consoleType: string;
}

/** The parts of the upgrade request the authorizer looks at. */
export interface ConsoleRequest {
  token: string | null;
  origin: string | undefined;
  host: string | undefined;
}

/** Asks the compute host that owns `instanceUuid` whether `port` is still its console (validate_console_port). */
export interface ConsolePortValidator {
  validate(req: { instanceUuid: string; computeHost: string; port: number; consoleType: string }): Promise<boolean>;
}

export interface ConsoleAuthorizerSettings {
  /** The console type this proxy serves ('novnc' or 'serial'). */
  consoleType: string;
  /** Hostnames a browser's Origin may name (see allowedOriginHostnames). */
  allowedOriginHostnames: ReadonlySet<string>;
  /** Base URL used for the Origin scheme check when a token row has none. */
  baseUrl: string;
  /** Bound on each database lookup. */
  lookupTimeoutMs: number;
}

/** The one instances-table read the proxy needs. */
export interface InstanceHostLookup {
  getByUuid(uuid: string): Promise<Pick<InstanceRow, 'host'> | null>;
}

export type RefusalReason =
  | 'no-token'
  | 'invalid-token'
  | 'wrong-console-type'
  | 'bad-origin'
  | 'instance-unknown'
  | 'port-not-valid'
  | 'validation-failed'
  | 'in-use';

/** A refused console request. `status` is the HTTP status the upgrade is answered with. */
export class ConsoleRefused extends Error {
  override readonly name = 'ConsoleRefused';
  constructor(
    readonly reason: RefusalReason,
    message: string,
    readonly instanceUuid: string | null = null,
    readonly status: number = 403,
  ) {
    super(message);
  }
}

export class ConsoleAuthorizer {
  constructor(
    private readonly tokens: Pick<ConsoleAuthTokenRepository, 'validate'>,
    private readonly instances: InstanceHostLookup,
    private readonly ports: ConsolePortValidator,
    private readonly settings: ConsoleAuthorizerSettings,
  ) {}

  /** Resolves to the guest to connect to, or rejects with ConsoleRefused. */
  async authorize(req: ConsoleRequest): Promise<ConsoleTarget> {
    if (req.token === null) throw new ConsoleRefused('no-token', 'No console token in the request');
    // The cheap, token-free part of the Origin check first: a cross-site page costs no database read.
    const origin = checkOriginHost(req.origin, req.host, this.settings.allowedOriginHostnames);
    if (!origin.ok) throw new ConsoleRefused('bad-origin', origin.reason);
    if (!plausibleToken(req.token)) throw new ConsoleRefused('invalid-token', 'The token has expired or is invalid');

    const row = await bounded(this.tokens.validate(req.token), this.settings.lookupTimeoutMs, 'console token lookup');
    if (row === null) throw new ConsoleRefused('invalid-token', 'The token has expired or is invalid');
    const uuid = row.instanceUuid;
    if (row.consoleType !== this.settings.consoleType) {
      throw new ConsoleRefused('wrong-console-type', `Token is for a ${row.consoleType} console, not ${this.settings.consoleType}`, uuid);
    }
    if (origin.scheme !== null && !originSchemeMatches(origin.scheme, row.accessUrlBase ?? this.settings.baseUrl)) {
      throw new ConsoleRefused('bad-origin', 'Origin header protocol does not match this host', uuid);
    }

    const instance = await bounded(this.instances.getByUuid(uuid), this.settings.lookupTimeoutMs, 'instance lookup');
    if (!instance?.host) throw new ConsoleRefused('instance-unknown', 'The instance of this console has no compute host', uuid);
    let valid: boolean;
    try {
      valid = await this.ports.validate({ instanceUuid: uuid, computeHost: instance.host, port: row.port, consoleType: row.consoleType });
    } catch (err) {
      // Nova treats a compute host that cannot confirm the port like a bad token: no console.
      throw new ConsoleRefused('validation-failed', `Compute host ${instance.host} could not validate the console port: ${errorText(err)}`, uuid, 503);
    }
    if (!valid) throw new ConsoleRefused('port-not-valid', `Port ${row.port} is no longer the console of the instance`, uuid);
    return { instanceUuid: uuid, host: row.host, port: row.port, internalAccessPath: row.internalAccessPath, consoleType: row.consoleType };
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ConsoleRefused('validation-failed', `${what} timed out after ${ms} ms`, null, 503)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
