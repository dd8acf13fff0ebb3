// Starting a guest again after its QEMU has exited: the driver records each guest's command line (read
// from /proc/<pid>/cmdline while it runs) under state_dir, and power_on relaunches QEMU from that record.
// This is what lets "stop then start" work for guests novamon did not launch.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { InternalError } from '../../exception.js';
import { pathInside } from '../instance-name.js';

/** What we know about how a guest was started, kept as `<stateDir>/<name>.json`. */
export interface GuestRecord {
  name: string;
  uuid: string | null;
  /** QEMU's argv as /proc showed it (argv[0] is the program). */
  argv: string[];
  /** QEMU's working directory, for relative paths in argv. */
  cwd: string;
  recordedAt: string;
  /** True while the guest is powered off by us (QEMU quit): listInstances keeps reporting it. */
  poweredOff: boolean;
}

export async function loadRecord(stateDir: string, name: string): Promise<GuestRecord | null> {
  const file = pathInside(stateDir, name, '.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const r = JSON.parse(text) as Partial<GuestRecord>;
    if (r.name !== name || !Array.isArray(r.argv) || r.argv.length === 0 || !r.argv.every((a) => typeof a === 'string')) return null;
    return {
      name,
      uuid: typeof r.uuid === 'string' ? r.uuid : null,
      argv: r.argv,
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
  await writeFile(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
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

/** Run QEMU from a record and wait for the daemonizing parent to exit (= the guest is up). */
export async function relaunch(record: GuestRecord, pidfile: string, timeoutMs: number): Promise<void> {
  const [program, ...args] = relaunchArgv(record.argv, pidfile);
  if (!program) throw new InternalError(`no command line recorded for ${record.name}`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(program, args, { cwd: record.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
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
