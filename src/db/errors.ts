// Errors raised by the database layer that callers may want to tell apart: a PGlite directory held by
// another live process, and an instance row whose id or name already belongs to another uuid.

/** The embedded PGlite database is open in another process (PGlite allows exactly one). */
export class DatabaseLocked extends Error {
  override readonly name = 'DatabaseLocked';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `embedded database ${dataDir} is in use by process ${pid}; PGlite allows one process at a time ` +
        `(stop it, or point [database] connection at PostgreSQL to share the database)`,
    );
  }
}

/** An insert or update would give an instance id or name that another instance uuid already has. */
export class InstanceConflict extends Error {
  override readonly name = 'InstanceConflict';
  constructor(
    readonly uuid: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`instance ${uuid} conflicts with an existing instance: ${detail}`, options);
  }
}

/** PostgreSQL's SQLSTATE for unique_violation; both pg and PGlite put it in `code`. */
export const UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(err: unknown): err is Error & { code: string; constraint?: string } {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === UNIQUE_VIOLATION;
}
