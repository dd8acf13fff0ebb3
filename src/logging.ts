// The project's logger: pino, JSON lines by default, pretty-printed for a terminal on request.
// Components take a child logger with `component` set; request ids and instance uuids go in fields.

import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty only for terminals: services logging JSON never load it.
const require = createRequire(import.meta.url);

export type { Logger } from 'pino';
export const RootLogger = Symbol.for('novamon.Logger');

export interface LoggerOptions {
  debug: boolean;
  format: 'pretty' | 'json';
  name: string;
  /** Write to this fd instead of stderr (1 = stdout). */
  fd?: number;
  /** Level when neither NOVAMON_LOG_LEVEL nor debug says otherwise (default info). */
  defaultLevel?: string;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = process.env['NOVAMON_LOG_LEVEL'] ?? (opts.debug ? 'debug' : (opts.defaultLevel ?? 'info'));
  const fd = opts.fd ?? 2;
  if (opts.format === 'pretty') {
    const pretty = require('pino-pretty') as typeof PinoPretty;
    return pino({ name: opts.name, level }, pretty({ sync: true, destination: fd, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
  }
  return pino({ name: opts.name, level, base: { pid: process.pid } }, pino.destination({ fd, sync: false }));
}

/** A logger that drops everything: for tests and library use without configuration. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
