// Loads nova.conf-style INI files (later --config-file wins), applies NOVAMON_<SECTION>__<KEY>
// environment overrides, and validates every value against the option table. A bad value fails
// start-up with an error naming the file, section and key.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import ini from 'ini';
import { options, type Config, type OptionSpec, type SectionName } from './options.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const ENV_PREFIX = 'NOVAMON_';

interface RawValue {
  value: unknown;
  origin: string;
}

function sectionNames(): SectionName[] {
  return Object.keys(options) as SectionName[];
}

function readIni(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read configuration file: ${(err as Error).message}`);
  }
  return ini.parse(text) as Record<string, unknown>;
}

/**
 * Builds the validated configuration. `files` are read in order; `env` supplies overrides such as
 * NOVAMON_DEFAULT__HOST or NOVAMON_DATABASE__CONNECTION. Unknown keys in a known section are an
 * error (a typo must not be silently ignored); unknown sections are ignored, as oslo.config does.
 */
export function loadConfig(files: readonly string[], env: NodeJS.ProcessEnv = {}): Config {
  const raw = new Map<string, RawValue>();
  const known = new Set(sectionNames());
  for (const file of files) {
    const parsed = readIni(file);
    for (const [sectionKey, body] of Object.entries(parsed)) {
      if (body === null || typeof body !== 'object') {
        throw new ConfigError(`${file}: option ${sectionKey} is outside any section; put it under [DEFAULT]`);
      }
      if (!known.has(sectionKey as SectionName)) continue;
      const section = sectionKey as SectionName;
      for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
        if (!(key in options[section])) {
          throw new ConfigError(`${file}: [${section}] ${key}: unknown option`);
        }
        raw.set(`${section}.${key}`, { value, origin: file });
      }
    }
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const [sectionPart, keyPart] = name.slice(ENV_PREFIX.length).split('__');
    if (sectionPart === undefined || keyPart === undefined) continue;
    const section = sectionNames().find((s) => s.toUpperCase() === sectionPart.toUpperCase());
    if (section === undefined) continue;
    const key = Object.keys(options[section]).find((k) => k.toUpperCase() === keyPart.toUpperCase());
    if (key === undefined) throw new ConfigError(`environment ${name}: [${section}] ${keyPart.toLowerCase()}: unknown option`);
    raw.set(`${section}.${key}`, { value, origin: `environment ${name}` });
  }

  const config: Record<string, Record<string, unknown>> = {};
  for (const section of sectionNames()) {
    const out: Record<string, unknown> = {};
    for (const [key, specUnknown] of Object.entries(options[section])) {
      const spec = specUnknown as OptionSpec;
      const given = raw.get(`${section}.${key}`);
      const input = given ? given.value : spec.default;
      const result = spec.schema.safeParse(input);
      if (!result.success) {
        const origin = given ? given.origin : 'default';
        const reason = result.error.issues.map((i) => i.message).join('; ');
        throw new ConfigError(`${origin}: [${section}] ${key} = ${JSON.stringify(input)}: ${reason}`);
      }
      out[key] = result.data;
    }
    config[section] = out;
  }
  const cfg = config as Config;
  if (cfg.DEFAULT.instances_path === '') cfg.DEFAULT.instances_path = path.join(cfg.DEFAULT.state_path, 'instances');
  return cfg;
}

/** The sample configuration file: every option, commented out, with its default and help. */
export function renderSample(): string {
  const lines = ['# novamon configuration, in the style of nova.conf. Every option, with its default.', ''];
  for (const section of sectionNames()) {
    lines.push(`[${section}]`, '');
    for (const [key, specUnknown] of Object.entries(options[section])) {
      const spec = specUnknown as OptionSpec;
      lines.push(`# ${spec.help}`);
      const dflt = key === 'host' ? '<this machine\'s hostname>' : Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default ?? '');
      lines.push(`#${key} = ${dflt}`, '');
    }
  }
  return lines.join('\n');
}
