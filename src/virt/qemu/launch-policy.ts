// What power_on may run. A stopped guest is started again from the command line recorded while it ran,
// and that record is written from /proc, which a compromised QEMU can rewrite (its argv is its own memory),
// under state_path. So: the record is trusted only if novamon wrote it (owned by us or root, mode 0600,
// in a directory nobody else can write, opened without following symlinks); the program run is always
// one of the configured emulators ([qemu] emulators), never the recorded argv[0]; and the arguments must
// pass the rules below (docs/security.md lists them).

import { constants, type Stats } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';

/** Options that load code or config, take fds, run as someone else or receive a migration: never relaunched. */
const DENIED_OPTIONS = new Set([
  '-incoming', '-plugin', '-add-fd', '-readconfig', '-writeconfig', '-fsdev', '-virtfs', '-runas', '-run-with',
  '-chroot', '-trace', '-loadvm', '-bios', '-L', '-kernel', '-initrd', '-append', '-dtb',
  '-option-rom', '-pflash', '-mem-path', '-sandbox', '-enable-sync-profile', '-semihosting-config', '-icount',
]);
/** Options whose value may name a chardev backend or host path: checked part by part. */
const PATH_OPTIONS = new Set(['-chardev', '-serial', '-parallel', '-monitor', '-qmp', '-qmp-pretty', '-mon', '-D', '-pidfile', '-debugcon', '-vnc']);
const NETWORK_OPTIONS = new Set(['-netdev', '-net', '-nic']);
const OBJECT_TYPES_ALLOWED = new Set(['iothread', 'rng-builtin', 'rng-random', 'memory-backend-ram', 'memory-backend-memfd', 'throttle-group']);

export interface LaunchPolicy {
  /** Absolute paths of the QEMU binaries power_on may run. */
  emulators: readonly string[];
  instancesPath: string;
}

function ours(st: Stats): boolean {
  const uid = process.getuid?.() ?? 0;
  return st.uid === uid || st.uid === 0;
}

/** The record file's text when novamon could have written it and nobody else can have changed it; else why not. */
export async function readTrustedRecord(stateDir: string, file: string): Promise<{ text: string } | { refused: string } | null> {
  let dir: Stats;
  try {
    dir = await lstat(stateDir);
  } catch {
    return null;
  }
  if (!dir.isDirectory()) return { refused: `${stateDir} is not a directory` };
  if (!ours(dir) || (dir.mode & 0o022) !== 0) return { refused: `${stateDir} is writable by another user (owner ${dir.uid}, mode ${(dir.mode & 0o777).toString(8)})` };
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? null : { refused: `${file} cannot be opened safely (${code ?? 'error'})` };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { refused: `${file} is not a regular file` };
    if (!ours(st) || (st.mode & 0o077) !== 0) return { refused: `${file} was not written by novamon (owner ${st.uid}, mode ${(st.mode & 0o777).toString(8)})` };
    if (st.size > 1024 * 1024) return { refused: `${file} is too large` };
    return { text: await fh.readFile('utf8') };
  } finally {
    await fh.close();
  }
}

async function realOrSelf(p: string): Promise<string> {
  return realpath(p).catch(() => p);
}

/** The configured emulator a process or record ran: by the resolved executable, else by argv[0]'s base name. */
export async function emulatorFor(exe: string | null, argv0: string, policy: LaunchPolicy): Promise<string | null> {
  for (const e of policy.emulators) {
    if (!path.isAbsolute(e)) continue;
    const real = await realOrSelf(e);
    if (exe !== null ? exe === real || exe === e : path.basename(argv0) === path.basename(e)) return e;
  }
  return null;
}

function insideInstances(p: string, policy: LaunchPolicy, cwd: string): boolean {
  const root = path.resolve(policy.instancesPath);
  const resolved = path.resolve(cwd, p);
  return resolved.startsWith(root + path.sep);
}

/** Why a `-chardev`/`-serial`/`-monitor`/... value is refused, or null. */
function pathOptionVerdict(opt: string, value: string, policy: LaunchPolicy, cwd: string): string | null {
  if (opt === '-D' || opt === '-pidfile') return insideInstances(value, policy, cwd) ? null : `${opt} ${value} is outside instances_path`;
  const parts = value.split(',');
  const head = parts[0] ?? '';
  if (/^(pipe|file|unix|tty|serial|parallel|parport|pty):/.test(head) || head.startsWith('/dev/')) {
    const p = head.slice(head.indexOf(':') + 1);
    if (/^(tty|serial|parallel|parport|pty):/.test(head) || head.startsWith('/dev/')) return `${opt} ${head} opens a host device`;
    if (!insideInstances(p, policy, cwd)) return `${opt} ${head} is outside instances_path`;
  }
  if (opt === '-chardev' && /^(tty|serial|parallel|parport|pipe)$/.test(head)) return `-chardev ${head} opens a host device or pipe`;
  for (const part of parts) {
    const m = /^(path|logfile|file)=(.*)$/.exec(part);
    if (m?.[2] !== undefined && !insideInstances(m[2], policy, cwd)) return `${opt} ${m[1]}=${m[2]} is outside instances_path`;
  }
  return null;
}

/** Why the recorded arguments may not be relaunched, or null when every option passes. */
export function argvVerdict(args: readonly string[], policy: LaunchPolicy, cwd: string): string | null {
  for (let i = 0; i < args.length; i++) {
    const raw = args[i] ?? '';
    if (!raw.startsWith('-')) continue;
    const opt = raw.startsWith('--') ? raw.slice(1) : raw;
    const name = opt.split('=')[0] ?? opt;
    const value = opt.includes('=') && !PATH_OPTIONS.has(name) ? opt.slice(name.length + 1) : (args[i + 1] ?? '');
    if (DENIED_OPTIONS.has(name)) return `option ${name} is not relaunched`;
    if (PATH_OPTIONS.has(name)) {
      const why = pathOptionVerdict(name, value, policy, cwd);
      if (why) return why;
    }
    if (NETWORK_OPTIONS.has(name)) {
      const bad = value.split(',').find((p) => /^(script|downscript|helper|vhostfd|fd|fds|vhostfds)=/.test(p) && !/^(script|downscript)=no$/.test(p));
      if (bad) return `${name} ${bad} runs a program or takes an fd`;
    }
    if (name === '-object') {
      const type = value.split(',')[0]?.replace(/^qom-type=/, '') ?? '';
      if (!OBJECT_TYPES_ALLOWED.has(type)) return `-object ${type} is not relaunched`;
      if (type === 'rng-random' && !/(^|,)filename=\/dev\/u?random(,|$)/.test(value) && /(^|,)filename=/.test(value)) return '-object rng-random reads a file other than /dev/random or /dev/urandom';
    }
    if ((name === '-drive' || name === '-blockdev') && /(^|,)(file\.)?(driver=)?(host_device|host_cdrom)(,|$)/.test(value)) return `${name} uses a host device`;
  }
  return null;
}
