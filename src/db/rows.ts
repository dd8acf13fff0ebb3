// Pure helpers shared by the repositories: reading typed values out of driver rows (pg returns int8 as
// strings, PGlite as numbers; both return timestamptz as Date and jsonb parsed), key case translation,
// and the sha256 hashing console tokens are stored under.

import { createHash } from 'node:crypto';

export type DbRow = Record<string, unknown>;

/** Lower-case hex sha256 of a UTF-8 string: how console tokens are stored (never in clear). */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export function snakeToCamel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export function camelToSnake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Column map for an insert or update: camelCase keys become snake_case columns, and keys whose value is
 * undefined are left out (undefined = "not given, keep what is there"; null = "set NULL").
 */
export function toColumns(values: Record<string, unknown>): DbRow {
  const out: DbRow = {};
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) out[camelToSnake(key)] = value;
  }
  return out;
}

function fail(column: string, expected: string, value: unknown): never {
  throw new TypeError(`column ${column}: expected ${expected}, got ${typeof value} ${String(value)}`);
}

/** An integer column (int4 or int8 as number, bigint or decimal string). */
export function intCol(row: DbRow, column: string): number {
  const value = row[column];
  const n = typeof value === 'number' ? value : typeof value === 'bigint' || typeof value === 'string' ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) fail(column, 'an integer', value);
  return n;
}

export function optIntCol(row: DbRow, column: string): number | null {
  return row[column] === null || row[column] === undefined ? null : intCol(row, column);
}

export function strCol(row: DbRow, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') fail(column, 'a string', value);
  return value;
}

export function optStrCol(row: DbRow, column: string): string | null {
  return row[column] === null || row[column] === undefined ? null : strCol(row, column);
}

export function boolCol(row: DbRow, column: string): boolean {
  const value = row[column];
  if (typeof value !== 'boolean') fail(column, 'a boolean', value);
  return value;
}

export function dateCol(row: DbRow, column: string): Date {
  const value = row[column];
  const d = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
  if (d === null || Number.isNaN(d.getTime())) fail(column, 'a timestamp', value);
  return d;
}

export function optDateCol(row: DbRow, column: string): Date | null {
  return row[column] === null || row[column] === undefined ? null : dateCol(row, column);
}

/** A jsonb column: both drivers hand back parsed JSON; a string is parsed in case a driver did not. */
export function jsonCol<T = unknown>(row: DbRow, column: string): T | null {
  const value = row[column];
  if (value === null || value === undefined) return null;
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

/**
 * A value for a jsonb parameter. Always stringified here: node-postgres would turn a JS array into a
 * PostgreSQL array literal, not JSON.
 */
export function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

/** Nova cuts fault and action messages to the 255 characters its columns hold. */
export function truncate(text: string, max = 255): string {
  return text.length <= max ? text : text.slice(0, max);
}

/**
 * Rows a DELETE touched. knex's pg client answers a number; through knex-pglite a `del()` comes back as
 * the raw result (its command is reported as DEL, which knex does not map), carrying `rowCount`.
 */
export function affectedRows(result: unknown): number {
  if (typeof result === 'number') return result;
  const count = (result as { rowCount?: unknown; affectedRows?: unknown } | null)?.rowCount ?? (result as { affectedRows?: unknown } | null)?.affectedRows;
  if (typeof count === 'number') return count;
  throw new TypeError(`cannot read an affected row count from ${typeof result}`);
}
