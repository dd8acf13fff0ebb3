// What the qemu driver learns about QEMU processes from /proc: which pid serves a monitor socket, its
// command line, per-thread CPU time, start time and RSS. Linux only; every reader returns null rather
// than guessing when a file is missing or unparsable.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';

let clockTicks: Promise<number> | undefined;

/** USER_HZ, the unit of utime/stime/starttime in /proc/<pid>/stat; asked of getconf once (normally 100). */
export function clockTicksPerSecond(): Promise<number> {
  clockTicks ??= new Promise((resolve) => {
    execFile('getconf', ['CLK_TCK'], { timeout: 2000 }, (err, stdout) => {
      const n = Number(String(stdout).trim());
      resolve(!err && Number.isInteger(n) && n > 0 ? n : 100);
    });
  });
  return clockTicks;
}

/** The argv of a process, or null when it is gone or unreadable. */
export async function readCmdline(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (raw.length === 0) return null; // a zombie or kernel thread
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

export async function readCwd(pid: number): Promise<string | null> {
  try {
    return await readlink(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** Fields of /proc/<pid>/stat that we use; the comm field may contain spaces and parentheses. */
export interface ProcStat {
  state: string;
  utime: number;
  stime: number;
  starttime: number;
}

export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // After "pid (comm) " the fields start at field 3 (state); utime is field 14, stime 15, starttime 22.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const state = f[0];
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  const starttime = Number(f[19]);
  if (!state || ![utime, stime, starttime].every(Number.isFinite)) return null;
  return { state, utime, stime, starttime };
}

/**
 * A small kernel-generated file (/proc/<pid>/stat, status, /proc/uptime), read synchronously: the kernel
 * answers in microseconds without waiting on the process, while an asynchronous read costs four thread-pool
 * round trips (open, fstat, read, close), which under load put milliseconds on the diagnostics path.
 */
export function readKernelText(file: string): string | null {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return null;
  }
}

async function readStat(file: string): Promise<ProcStat | null> {
  const text = readKernelText(file);
  return text === null ? null : parseProcStat(text);
}

/** Is this pid a live (not zombie) process? */
export async function isAlive(pid: number): Promise<boolean> {
  const st = await readStat(`/proc/${pid}/stat`);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** CPU time (user + system) of one thread of a process, in nanoseconds. */
export async function threadCpuNs(pid: number, tid: number): Promise<number | null> {
  const st = await readStat(`/proc/${pid}/task/${tid}/stat`);
  if (!st) return null;
  const hz = await clockTicksPerSecond();
  return Math.round(((st.utime + st.stime) * 1e9) / hz);
}

/** CPU time (user + system) of a whole process, all threads, in nanoseconds. */
export async function processCpuNs(pid: number): Promise<number | null> {
  const st = await readStat(`/proc/${pid}/stat`);
  if (!st) return null;
  return Math.round(((st.utime + st.stime) * 1e9) / (await clockTicksPerSecond()));
}

/** Whole seconds since the process started (from its starttime and /proc/uptime). */
export async function processUptimeSeconds(pid: number): Promise<number | null> {
  const st = await readStat(`/proc/${pid}/stat`);
  if (!st) return null;
  const sinceBoot = Number(readKernelText('/proc/uptime')?.split(/\s+/)[0]);
  if (!Number.isFinite(sinceBoot)) return null;
  const hz = await clockTicksPerSecond();
  return Math.max(0, Math.floor(sinceBoot - st.starttime / hz));
}

/** Resident set size in KiB (VmRSS). */
export async function rssKiB(pid: number): Promise<number | null> {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readKernelText(`/proc/${pid}/status`) ?? '');
  return m ? Number(m[1]) : null;
}

/**
 * Does this command line serve the monitor socket `socketPath`? Matches `path=<p>` (chardev socket) and
 * `unix:<p>` (-qmp/-monitor) options; relative paths are taken relative to the process's cwd.
 */
export function cmdlineServesSocket(argv: readonly string[], socketPath: string, cwd: string | null): boolean {
  for (const arg of argv) {
    for (const part of arg.split(',')) {
      const m = /^(?:path=|unix:)(.+)$/.exec(part);
      if (!m?.[1]) continue;
      const p = m[1];
      const resolved = path.isAbsolute(p) ? p : cwd ? path.resolve(cwd, p) : null;
      if (resolved === socketPath) return true;
    }
  }
  return false;
}

/** The process's executable (/proc/<pid>/exe), " (deleted)" removed after a package upgrade; null if unreadable. */
export async function readExe(pid: number): Promise<string | null> {
  try {
    return (await readlink(`/proc/${pid}/exe`)).replace(/ \(deleted\)$/, '');
  } catch {
    return null;
  }
}

/** Is the process running one of `emulators`? Its arguments are its own to rewrite; its exe is not. */
export async function runsEmulator(pid: number, emulators: readonly string[]): Promise<boolean> {
  const exe = await readExe(pid);
  if (exe === null) return false;
  for (const e of emulators) if (exe === e || exe === (await realpath(e).catch(() => e))) return true;
  return false;
}

/** The live pid serving `socketPath`, if it still does, and runs a configured emulator when `emulators` is given. */
export async function verifyPid(pid: number, socketPath: string, emulators?: readonly string[]): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  if (emulators && !(await runsEmulator(pid, emulators))) return false;
  const argv = await readCmdline(pid);
  return argv !== null && cmdlineServesSocket(argv, socketPath, await readCwd(pid));
}

/** Scan /proc for the process whose command line serves `socketPath` (the slow path, no pidfile). */
export async function findPidServing(socketPath: string, emulators?: readonly string[]): Promise<number | null> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return null;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const argv = await readCmdline(pid);
    // Cheap prefilter before resolving cwd: the socket's base name must appear somewhere.
    if (!argv || !argv.some((a) => a.includes(path.basename(socketPath)))) continue;
    if (emulators && !(await runsEmulator(pid, emulators))) continue;
    if (cmdlineServesSocket(argv, socketPath, await readCwd(pid)) && (await isAlive(pid))) return pid;
  }
  return null;
}
