// What power_on may run. A stopped guest is started again from the command line recorded while it ran,
// and that record is written from /proc, which a compromised QEMU can rewrite (its argv is its own memory),
// under state_path. So: the record is trusted only if novamon wrote it (owned by us or root, mode 0600,
// in a directory nobody else can write, opened without following symlinks); the program run is always
// one of the configured emulators ([qemu] emulators), never the recorded argv[0]; and every argument must
// pass the rules of launch-rules.ts (docs/security.md lists them).

import { constants, type Stats } from 'node:fs';
import { access, lstat, open, realpath } from 'node:fs/promises';
import path from 'node:path';
import { imageRule, type RuleContext } from './launch-backends.js';
import { imageVerdict, insideVerdict, resolveRoots } from './launch-paths.js';
import { FLAGS, optionVerdict, RULES } from './launch-rules.js';

export interface LaunchPolicy {
  /** Absolute paths of the QEMU binaries power_on may run. */
  emulators: readonly string[];
  instancesPath: string;
  /** Directories besides instances_path where disk images and files loaded into a guest may live ([qemu] relaunch_image_paths). */
  imagePaths: readonly string[];
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

/** How the relaunch rules check host paths, for a QEMU that runs in `cwd`. */
export async function ruleContext(policy: LaunchPolicy, cwd: string): Promise<RuleContext> {
  const roots = await resolveRoots(policy.instancesPath, policy.imagePaths);
  return {
    state: (p, what) => insideVerdict(p, 'state', roots, cwd, what),
    load: (p, what) => insideVerdict(p, 'images', roots, cwd, what),
    image: (p, what) => imageVerdict(p, roots, cwd, what),
    firmware: async (p, what) => {
      // QEMU tries the name as a path first, then its data directories (-L, its own install): a name
      // without a slash that is not readable here is firmware QEMU ships.
      if (p !== '' && !p.includes('/') && !(await access(path.resolve(cwd, p), constants.R_OK).then(() => true, () => false))) return null;
      return insideVerdict(p, 'images', roots, cwd, what);
    },
  };
}

/**
 * Why the recorded arguments may not be relaunched, or null when every one passes. Deny by default:
 * an option launch-rules.ts does not know is refused; an argument that is not an option is, to QEMU,
 * the first disk's image and is checked as one.
 */
export async function argvVerdict(args: readonly string[], policy: LaunchPolicy, cwd: string): Promise<string | null> {
  const ctx = await ruleContext(policy, cwd);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    let why: string | null;
    if (!arg.startsWith('-')) {
      why = await imageRule(arg, ctx, 'disk image argument');
    } else {
      const name = arg.startsWith('--') ? arg.slice(1) : arg;
      if (FLAGS.has(name)) continue;
      if (!Object.hasOwn(RULES, name)) return `option ${name} is not relaunched`;
      const value = args[i + 1];
      if (value === undefined) return `option ${name} has no value`;
      i += 1;
      why = await optionVerdict(name, value, ctx);
    }
    if (why !== null) return why;
  }
  return null;
}
