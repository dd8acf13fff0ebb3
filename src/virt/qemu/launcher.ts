// Starting a guest again after its QEMU has exited: the driver records each guest's command line (read
// from /proc/<pid>/cmdline while it runs) under state_dir, and power_on relaunches QEMU from that record.
// This is what lets "stop then start" work for guests novamon did not launch.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InternalError } from '../../exception.js';
import { pathInside } from '../instance-name.js';
import { argvVerdict, emulatorFor, readTrustedRecord, type LaunchPolicy } from './launch-policy.js';

/** What we know about how a guest was started, kept as `<stateDir>/<name>.json`. */
export interface GuestRecord {
  name: string;
  uuid: string | null;
  /** QEMU's argv as /proc showed it (argv[0] is the program). */
  argv: string[];
  /** The resolved executable (/proc/<pid>/exe) when recorded; null in records from older releases. */
  exe: string | null;
  /** QEMU's working directory, for relative paths in argv. */
  cwd: string;
  recordedAt: string;
  /** True while the guest is powered off by us (QEMU quit): listInstances keeps reporting it. */
  poweredOff: boolean;
}

/**
 * The guest's record, or null when there is none or it cannot be trusted (`onRefused` hears why): see
 * launch-policy.ts for what novamon accepts as a record it wrote itself.
 */
export async function loadRecord(stateDir: string, name: string, onRefused?: (why: string) => void): Promise<GuestRecord | null> {
  const file = pathInside(stateDir, name, '.json');
  const read = await readTrustedRecord(stateDir, file);
  if (read === null) return null;
  if ('refused' in read) {
    onRefused?.(read.refused);
    return null;
  }
  try {
    const r = JSON.parse(read.text) as Partial<GuestRecord>;
    if (r.name !== name || !Array.isArray(r.argv) || r.argv.length === 0 || !r.argv.every((a) => typeof a === 'string')) return null;
    return {
      name,
      uuid: typeof r.uuid === 'string' ? r.uuid : null,
      argv: r.argv,
      exe: typeof r.exe === 'string' ? r.exe : null,
      cwd: typeof r.cwd === 'string' ? r.cwd : '/',
      recordedAt: typeof r.recordedAt === 'string' ? r.recordedAt : '',
      poweredOff: r.poweredOff === true,
    };
  } catch {
    return null;
  }
}

/** Write a record atomically (temp file + rename) so a crash never leaves half a command line. */
export async function saveRecord(stateDir: string, record: GuestRecord): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = pathInside(stateDir, record.name, '.json');
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  // wx: never through a file or symlink someone planted under the temporary name.
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file);
}

/**
 * The argv to relaunch with: QEMU must daemonize (so we know when it is up and it outlives us) and
 * write a pidfile; a chardev log is appended to rather than truncated, so the console history
 * survives a restart as it does under libvirt's virtlogd.
 */
export function relaunchArgv(argv: readonly string[], pidfile: string): string[] {
  const out = argv.map((arg, i) => {
    const prev = argv[i - 1];
    if (prev === '-chardev' && /(^|,)logfile=/.test(arg) && !/(^|,)logappend=/.test(arg)) return `${arg},logappend=on`;
    return arg;
  });
  if (!out.includes('-daemonize')) out.push('-daemonize');
  if (!out.includes('-pidfile')) out.push('-pidfile', pidfile);
  return out;
}

/** The program and arguments a relaunch runs, once they passed the launch policy. */
export interface RelaunchPlan {
  program: string;
  args: string[];
}

/**
 * What relaunching `record` would run: the configured emulator the record names, never argv[0], and the
 * arguments if the launch policy accepts them; otherwise an InternalError naming the reason. Nothing is
 * touched on the host, so callers check before they act on the record's files (console logs).
 */
export async function planRelaunch(record: GuestRecord, pidfile: string, policy: LaunchPolicy): Promise<RelaunchPlan> {
  const [argv0, ...args] = relaunchArgv(record.argv, pidfile);
  if (argv0 === undefined) throw new InternalError(`no command line recorded for ${record.name}`);
  const program = await emulatorFor(record.exe, argv0, policy);
  if (program === null) throw new InternalError(`refusing to relaunch ${record.name}: ${record.exe ?? argv0} is not a configured emulator ([qemu] emulators)`);
  const why = await argvVerdict(args, policy, record.cwd);
  if (why !== null) throw new InternalError(`refusing to relaunch ${record.name}: ${why}`);
  return { program, args };
}

/** Run a checked plan and wait for the daemonizing parent to exit (= the guest is up). */
export async function runRelaunch(record: GuestRecord, plan: RelaunchPlan, timeoutMs: number): Promise<void> {
  const { program, args } = plan;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(program, args, { cwd: record.cwd, stdio: ['ignore', 'ignore', 'pipe'], argv0: path.basename(program) });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new InternalError(`relaunching ${record.name}: QEMU did not daemonize within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new InternalError(`relaunching ${record.name}: ${err.message}`, { cause: err }));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new InternalError(`relaunching ${record.name}: QEMU exited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

/** Check, then run: see planRelaunch and runRelaunch. */
export async function relaunch(record: GuestRecord, pidfile: string, timeoutMs: number, policy: LaunchPolicy): Promise<void> {
  await runRelaunch(record, await planRelaunch(record, pidfile, policy), timeoutMs);
}
