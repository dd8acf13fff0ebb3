// What the qemu driver learns about QEMU processes from /proc: which pid serves a monitor socket, its
// command line, per-thread CPU time, start time and RSS. Linux only; every reader returns null rather
// than guessing when a file is missing or unparsable.

import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';

/** A positive integer system setting from getconf, or `fallback` when getconf cannot tell. */
function getconf(name: string, fallback: number): Promise<number> {
  return new Promise((resolve) => {
    execFile('getconf', [name], { timeout: 2000 }, (err, stdout) => {
      const n = Number(String(stdout).trim());
      resolve(!err && Number.isInteger(n) && n > 0 ? n : fallback);
    });
  });
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
  /** Resident pages (field 24): the same count as VmRSS in /proc/<pid>/status. */
  rssPages: number;
}

export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  // After "pid (comm) " the fields start at field 3 (state); utime is field 14, stime 15, starttime 22, rss 24.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const state = f[0];
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  const starttime = Number(f[19]);
  const rssPages = Number(f[21]);
  if (!state || ![utime, stime, starttime, rssPages].every(Number.isFinite)) return null;
  return { state, utime, stime, starttime, rssPages };
}

const kernelTextBuf = Buffer.allocUnsafe(4096);
/** The files read here are a few hundred bytes; anything past this is not one of them. */
const KERNEL_TEXT_MAX = 1 << 20;

/**
 * A small kernel-generated file (/proc/<pid>/stat, /sys counters), read synchronously: the kernel answers
 * in microseconds without waiting on the process, while an asynchronous read costs four thread-pool round
 * trips (open, fstat, read, close), which under load put milliseconds on the diagnostics path. One open,
 * reads into a shared buffer until the end (a seq_file hands out whole lines per read), one close:
 * readFileSync's size probe and growing buffers made it about twice as slow (30 against 15 microseconds a
 * file, measured on the bench machine). Null when missing, unreadable or over a MiB.
 */
export function readKernelText(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    let text = '';
    for (;;) {
      const n = readSync(fd, kernelTextBuf, 0, kernelTextBuf.length, null);
      if (n === 0) return text;
      text += kernelTextBuf.toString('latin1', 0, n);
      if (text.length > KERNEL_TEXT_MAX) return null;
    }
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

let uptimeFd: number | null = null;

/**
 * Seconds since boot from /proc/uptime, on a descriptor kept open for the life of the process (the file is
 * the system's, not a process's: it never goes away), or NaN when unreadable.
 */
export function secondsSinceBoot(): number {
  try {
    uptimeFd ??= openSync('/proc/uptime', 'r');
    // One line, far shorter than the buffer: one read from the start returns all of it.
    const n = readSync(uptimeFd, kernelTextBuf, 0, kernelTextBuf.length, 0);
    return Number(kernelTextBuf.toString('latin1', 0, n).split(' ', 1)[0]);
  } catch {
    return Number.NaN;
  }
}

function readStat(file: string): ProcStat | null {
  const text = readKernelText(file);
  return text === null ? null : parseProcStat(text);
}

/** Is this pid a live (not zombie) process? */
export async function isAlive(pid: number): Promise<boolean> {
  const st = readStat(`/proc/${pid}/stat`);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** The units /proc counts in: USER_HZ ticks (utime, stime, starttime) and the page size (rss), asked of getconf once. */
export interface ProcUnits {
  ticksPerSecond: number;
  pageBytes: number;
}

let units: Promise<ProcUnits> | undefined;

export function procUnits(): Promise<ProcUnits> {
  units ??= Promise.all([getconf('CLK_TCK', 100), getconf('PAGESIZE', 4096)]).then(([ticksPerSecond, pageBytes]) => ({ ticksPerSecond, pageBytes }));
  return units;
}

/** What diagnostics read of a QEMU process, each null when unreadable. */
export interface ProcessSample {
  /** CPU time (user + system) of the whole process, all threads, nanoseconds. */
  cpuNs: number | null;
  /** Whole seconds since the process started. */
  uptimeSeconds: number | null;
  rssKiB: number | null;
  /** CPU time of each thread asked for, nanoseconds, in the order given. */
  threadCpuNs: Array<number | null>;
}

/**
 * One synchronous sample of a process: /proc/<pid>/stat (CPU, start time, RSS), /proc/uptime, and one
 * /proc/<pid>/task/<tid>/stat per thread asked for. No other file is read.
 */
export function sampleProcess(pid: number, tids: readonly number[], u: ProcUnits): ProcessSample {
  const toNs = (st: ProcStat | null): number | null => (st ? Math.round(((st.utime + st.stime) * 1e9) / u.ticksPerSecond) : null);
  const st = readStat(`/proc/${pid}/stat`);
  const sinceBoot = secondsSinceBoot();
  return {
    cpuNs: toNs(st),
    uptimeSeconds: st && Number.isFinite(sinceBoot) ? Math.max(0, Math.floor(sinceBoot - st.starttime / u.ticksPerSecond)) : null,
    rssKiB: st ? Math.floor((st.rssPages * u.pageBytes) / 1024) : null,
    threadCpuNs: tids.map((tid) => toNs(readStat(`/proc/${pid}/task/${tid}/stat`))),
  };
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
