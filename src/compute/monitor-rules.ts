// What the monitor passthrough never runs, and the argument rules for the commands it runs only with
// safe arguments. The allow-list ([monitor] passthrough_allowed_commands) is the operator's; these rules
// hold whatever it says: a command that writes host files, opens host sockets or fds, runs programs, or
// reconfigures devices, backends, authentication or migration is denied outright, and the few useful
// commands that take a path or a URI (screendump, dump-guest-memory, pmemsave, memsave, migrate) are
// accepted only with a path under instances_path or a URI of a configured scheme. HMP command lines are
// parsed to their command name and checked by the same rules (docs/security.md).

import { lstatSync, realpathSync } from 'node:fs';
import path from 'node:path';

/** QMP commands never run through the passthrough, whatever the allow-list says. */
export const QMP_DENIED: ReadonlySet<string> = new Set([
  'quit', 'getfd', 'add-fd', 'remove-fd', 'closefd', 'get-win32-socket', 'add_client',
  'object-add', 'object-del', 'device_add', 'device_del', 'netdev_add', 'netdev_del',
  'chardev-add', 'chardev-change', 'chardev-remove',
  'blockdev-add', 'blockdev-del', 'blockdev-create', 'blockdev-reopen', 'blockdev-change-medium', 'change', 'eject',
  'drive-mirror', 'blockdev-mirror', 'drive-backup', 'blockdev-backup', 'block-commit', 'block-stream',
  'blockdev-snapshot-sync', 'blockdev-snapshot', 'blockdev-snapshot-internal-sync', 'blockdev-snapshot-delete-internal-sync',
  'snapshot-save', 'snapshot-load', 'snapshot-delete', 'block-export-add', 'block-export-del',
  'nbd-server-start', 'nbd-server-add', 'nbd-server-remove', 'nbd-server-stop',
  'migrate-incoming', 'migrate-recover', 'migrate-set-parameters', 'migrate-set-capabilities', 'client_migrate_info',
  'qom-set', 'set_password', 'expire_password', 'display-reload', 'display-update',
  'xen-save-devices-state', 'xen-load-devices-state', 'dump-skeys', 'trace-event-set-state',
]);

/** HMP commands (and aliases) never run, whatever the allow-list says. */
export const HMP_DENIED: ReadonlySet<string> = new Set([
  'quit', 'q', 'getfd', 'closefd', 'object_add', 'object_del', 'device_add', 'device_del', 'netdev_add', 'netdev_del',
  'chardev-add', 'chardev-change', 'chardev-remove', 'drive_add', 'drive_del', 'drive_mirror', 'drive_backup',
  'block_stream', 'commit', 'snapshot_blkdev', 'snapshot_blkdev_internal', 'snapshot_delete_blkdev_internal',
  'savevm', 'loadvm', 'delvm', 'change', 'eject', 'migrate_incoming', 'migrate_recover', 'migrate_set_parameter',
  'migrate_set_capability', 'client_migrate_info', 'qom-set', 'set_password', 'expire_password',
  'gdbserver', 'logfile', 'log', 'trace-file', 'trace-event', 'wavcapture', 'nbd_server_start', 'nbd_server_add',
  'nbd_server_remove', 'nbd_server_stop', 'hostfwd_add', 'hostfwd_remove', 'o', 'dump-skeys', 'exit_preconfig',
  'x_colo_lost_heartbeat', 'xen-save-devices-state',
]);

/** URI schemes migrate never gets: `exec:` runs a shell command, `fd:` uses an fd passed with getfd. */
export const MIGRATE_SCHEMES_NEVER: ReadonlySet<string> = new Set(['exec', 'fd']);

export interface MonitorRuleSettings {
  /** Paths a command may write: inside this directory only (instances_path). Empty: no path is accepted. */
  instancesPath: string;
  /** URI schemes `migrate` may use ([monitor] passthrough_migrate_uri_schemes). */
  migrateUriSchemes: readonly string[];
}

/** null when acceptable, else why not. */
export type RuleVerdict = string | null;

function realpathOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/**
 * A host path the passthrough may hand QEMU: absolute (QEMU resolves a relative one against its own
 * working directory), inside instances_path once normalised and once symlinks in its directory are
 * resolved, and not itself a symlink or anything but a regular file when it exists.
 */
export function pathRule(file: unknown, s: MonitorRuleSettings, what: string): RuleVerdict {
  if (typeof file !== 'string' || file === '') return `${what}: a file name is required`;
  if (!s.instancesPath) return `${what}: no instances_path to write under`;
  if ([...file].some((c) => c < ' ' || c === ',')) return `${what}: control characters or commas in the file name`;
  if (!path.isAbsolute(file)) return `${what}: ${file} is not an absolute path`;
  const root = path.resolve(s.instancesPath);
  const resolved = path.resolve(file);
  if (!resolved.startsWith(root + path.sep)) return `${what}: ${file} is outside instances_path`;
  const realRoot = realpathOrNull(root) ?? root;
  const realDir = realpathOrNull(path.dirname(resolved));
  if (realDir === null || (realDir !== realRoot && !realDir.startsWith(realRoot + path.sep))) return `${what}: ${file} is outside instances_path`;
  try {
    if (!lstatSync(resolved).isFile()) return `${what}: ${file} exists and is not a regular file`;
  } catch {
    // Not there yet: QEMU creates it.
  }
  return null;
}

export function migrateUriRule(uri: unknown, s: MonitorRuleSettings): RuleVerdict {
  if (typeof uri !== 'string') return 'migrate: a uri is required';
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(uri);
  const scheme = m?.[1]?.toLowerCase();
  if (!m || !scheme) return `migrate: ${uri.slice(0, 60)} is not a URI`;
  if (MIGRATE_SCHEMES_NEVER.has(scheme)) return `migrate: the ${scheme}: scheme is never allowed`;
  if (!s.migrateUriSchemes.includes(scheme)) return `migrate: the ${scheme}: scheme is not in [monitor] passthrough_migrate_uri_schemes`;
  if (scheme === 'unix' || scheme === 'file') return pathRule(m[2], s, `migrate ${scheme}:`);
  return null;
}

/** Argument rules of the QMP commands that take a path or URI; other commands have none. */
export function qmpArgumentRule(execute: string, args: Record<string, unknown>, s: MonitorRuleSettings): RuleVerdict {
  switch (execute) {
    case 'screendump':
    case 'pmemsave':
    case 'memsave':
      return pathRule(args['filename'], s, execute);
    case 'dump-guest-memory': {
      const protocol = args['protocol'];
      if (typeof protocol !== 'string' || !protocol.startsWith('file:')) return 'dump-guest-memory: only a file: protocol is allowed';
      return pathRule(protocol.slice('file:'.length), s, execute);
    }
    case 'migrate':
      if (args['channels'] !== undefined) return 'migrate: channels are not allowed, give a uri';
      return migrateUriRule(args['uri'], s);
    default:
      return null;
  }
}

/** An HMP command line split into its command name and arguments; null when it cannot be checked. */
export function parseHmpLine(line: string): { name: string; args: string[] } | null {
  // Quotes, escapes and control characters make the words HMP sees differ from ours: refuse them.
  if (/["'\\\0\r\n]/.test(line)) return null;
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  const name = words[0];
  if (!name) return null;
  return { name, args: words.slice(1) };
}

/** Argument rules of the HMP commands that take a path or URI (same rules as their QMP forms). */
export function hmpArgumentRule(name: string, args: readonly string[], s: MonitorRuleSettings): RuleVerdict {
  const positional = args.filter((a) => !a.startsWith('-'));
  switch (name) {
    case 'screendump':
      return pathRule(positional[0], s, name);
    case 'dump-guest-memory':
      return pathRule(positional[0], s, name);
    case 'pmemsave':
    case 'memsave':
      return pathRule(positional[2], s, name);
    case 'migrate':
      return migrateUriRule(positional[positional.length - 1], s);
    default:
      return null;
  }
}
