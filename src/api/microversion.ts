// Compute API microversions: parsing the OpenStack-API-Version / X-OpenStack-Nova-API-Version headers the
// way Nova (microversion_parse) does, negotiating against [MIN_VERSION, MAX_VERSION], and comparing.
// MAX_VERSION is the highest version whose every change to the endpoints novamon serves is implemented.

export interface ApiVersion {
  readonly major: number;
  readonly minor: number;
}

export const MIN_VERSION: ApiVersion = { major: 2, minor: 1 };
/**
 * 2.73: servers view through locked_reason (2.3, 2.9, 2.16, 2.19, 2.26, 2.47, 2.63, 2.71, 2.73),
 * remote-consoles (2.6, 2.8), diagnostics view (2.48), instance actions (2.21, 2.51, 2.58, 2.62, 2.66),
 * the image proxy's removal (2.36). 2.75 (strict list query parameters) is not implemented.
 */
export const MAX_VERSION: ApiVersion = { major: 2, minor: 73 };

export const API_VERSION_HEADER = 'OpenStack-API-Version';
export const LEGACY_VERSION_HEADER = 'X-OpenStack-Nova-API-Version';

const VERSION_RE = /^([1-9]\d*)\.([1-9]\d*|0)$/;

export function versionString(v: ApiVersion): string {
  return `${v.major}.${v.minor}`;
}

export function compareVersions(a: ApiVersion, b: ApiVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

/** True when `v` >= `min` (and <= `max` if given). Versions are written "2.48". */
export function isSupported(v: ApiVersion, min: string, max?: string): boolean {
  if (compareVersions(v, parseVersionString(min)) < 0) return false;
  return max === undefined || compareVersions(v, parseVersionString(max)) <= 0;
}

export class InvalidApiVersionString extends Error {
  constructor(readonly version: string) {
    super(`API Version String ${version} is of invalid format. Must be of format MajorNum.MinorNum.`);
  }
}

export class UnsupportedApiVersion extends Error {
  constructor(readonly version: ApiVersion) {
    super(
      `Version ${versionString(version)} is not supported by the API. Minimum is ${versionString(MIN_VERSION)} and maximum is ${versionString(MAX_VERSION)}.`,
    );
  }
}

export function parseVersionString(text: string): ApiVersion {
  const m = VERSION_RE.exec(text);
  if (!m) throw new InvalidApiVersionString(text);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

type HeaderValue = string | string[] | undefined;

/**
 * The version string a request asks for, as microversion_parse.get_version reads it: the last
 * `compute X.Y` entry of OpenStack-API-Version (comma lists, repeated headers), else the legacy
 * header, else null (no version requested).
 */
export function requestedVersionText(headers: Record<string, HeaderValue>): string | null {
  const join = (v: HeaderValue): string | undefined => (Array.isArray(v) ? v.join(',') : v);
  const modern = join(headers[API_VERSION_HEADER.toLowerCase()]);
  if (modern !== undefined) {
    let found: string | null = null;
    for (const entry of modern.split(',')) {
      const [service, ...rest] = entry.trim().split(/\s+/);
      if (service?.toLowerCase() === 'compute' && rest.length > 0) found = rest.join(' ');
    }
    if (found !== null) return found;
  }
  const legacy = join(headers[LEGACY_VERSION_HEADER.toLowerCase()]);
  if (legacy !== undefined) {
    const parts = legacy.split(',').map((s) => s.trim());
    return parts[parts.length - 1] ?? null;
  }
  return null;
}

/** Negotiates the request's version; throws InvalidApiVersionString (400) or UnsupportedApiVersion (406). */
export function negotiateVersion(headers: Record<string, HeaderValue>): ApiVersion {
  const text = requestedVersionText(headers);
  if (text === null) return MIN_VERSION;
  if (text.toLowerCase() === 'latest') return MAX_VERSION;
  const v = parseVersionString(text);
  if (compareVersions(v, MIN_VERSION) < 0 || compareVersions(v, MAX_VERSION) > 0) throw new UnsupportedApiVersion(v);
  return v;
}
