// Host-side memory dump of a panicked guest ([qemu] panic_dump): QEMU writes an ELF core of the guest's
// memory (`dump-guest-memory`, detached, followed with `query-dump`) into `<state_path>/qemu/dumps/<name>/`,
// a mode-0700 directory only novamon writes to, before the power-state sync stops the guest. Size-capped,
// refused when the disk cannot hold it, checked after QEMU wrote it, and the oldest beyond a count removed.

import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import * as qmp from '../../qmp/commands.js';
import { pathInside } from '../instance-name.js';
import type { QemuGuest } from './guest.js';

export interface PanicDumpSettings {
  /** [qemu] panic_dump: off by default. */
  readonly enabled: boolean;
  /** Guests with more memory than this are not dumped. */
  readonly maxBytes: number;
  /** Dumps kept per guest; the oldest beyond this are removed after each new one. */
  readonly keep: number;
  /** How long a dump may take before it is given up (and its file removed). */
  readonly timeoutMs: number;
}

export const DEFAULT_PANIC_DUMP: PanicDumpSettings = { enabled: false, maxBytes: 4 * 1024 ** 3, keep: 3, timeoutMs: 300_000 };

/** `<UTC timestamp>.elf`, as dumpFileName writes it: sorting by name sorts by age. */
export const DUMP_FILE_PATTERN = /^\d{8}T\d{6}\.\d{3}Z\.elf$/;
/** Appended to a dump's name while QEMU writes it. */
const PARTIAL_SUFFIX = '.partial';

/** Free space a dump needs beyond the guest's memory, as a fraction of it: 10% (ELF headers, ROMs and video RAM are dumped too). */
const FREE_SPACE_DIVISOR = 10;
/** What a finished dump may weigh beyond the guest's memory before it is refused as not what we asked for. */
const SIZE_HEADROOM_BYTES = 256 * 1024 ** 2;
const POLL_MS = 250;

export interface DumpEntry {
  readonly file: string;
  readonly size: number;
  readonly mtime: string;
  readonly path: string;
}

/** What a dump needs to know of the guest: its validated name, QEMU's run state, its memory, its monitor. */
export interface DumpTarget {
  readonly name: string;
  readonly status: string;
  /** Boot plus hot-plugged memory from the guest's model; null when QEMU would not say. */
  readonly memoryBytes: number | null;
  readonly exec: qmp.QmpExecutor;
}

/** `<stateDir>/dumps/<name>`, for a name already validated by the instance name template. */
export function dumpsDir(stateDir: string, name: string): string {
  return pathInside(path.join(stateDir, 'dumps'), name, '');
}

export function dumpFileName(at: Date): string {
  return `${at.toISOString().replace(/[-:]/g, '')}.elf`;
}

/** Largest size a finished dump of a guest with `memoryBytes` may have. */
export function dumpSizeLimit(memoryBytes: number): number {
  return memoryBytes + Math.max(Math.ceil(memoryBytes / FREE_SPACE_DIVISOR), SIZE_HEADROOM_BYTES);
}

/** Why a dump is not taken (null: it may be). */
export function dumpRefusal(memoryBytes: number | null, freeBytes: number, maxBytes: number): string | null {
  if (memoryBytes === null) return 'the guest\'s memory size is unknown';
  if (memoryBytes > maxBytes) return `the guest has ${memoryBytes} bytes of memory, over [qemu] panic_dump_max_bytes (${maxBytes})`;
  const needed = memoryBytes + Math.ceil(memoryBytes / FREE_SPACE_DIVISOR);
  if (freeBytes < needed) return `${freeBytes} bytes free on the dump directory's filesystem, ${needed} needed`;
  return null;
}

/**
 * Dumps a guest stopped in `guest-panicked`; resolves with the dump, or null when it was refused or
 * failed (each logged at warn). Never rejects: the stop that follows must run whatever happened here.
 */
export async function dumpPanickedGuest(target: DumpTarget, settings: PanicDumpSettings, stateDir: string, logger: Logger): Promise<DumpEntry | null> {
  const log = logger.child({ instance: target.name });
  if (target.status !== 'guest-panicked') {
    log.info({ status: target.status }, 'guest is no longer stopped in guest-panicked; no memory dump');
    return null;
  }
  let partial: string | null = null;
  try {
    const dir = await ensureDumpsDir(stateDir, target.name);
    const refusal = dumpRefusal(target.memoryBytes, await freeBytes(dir), settings.maxBytes);
    if (refusal !== null) {
      log.warn({ reason: refusal }, 'guest panicked; memory dump refused');
      return null;
    }
    // QEMU writes under a name nobody lists; only a finished, checked dump gets its `.elf` name.
    const file = path.join(dir, dumpFileName(new Date()));
    partial = `${file}${PARTIAL_SUFFIX}`;
    await runDump(target.exec, partial, settings.timeoutMs);
    const st = await verifyDump(partial, dumpSizeLimit(target.memoryBytes as number));
    await rename(partial, file);
    partial = null;
    const removed = await pruneDumps(dir, settings.keep);
    log.warn({ path: file, bytes: st.size, removed }, 'guest panicked; its memory was dumped');
    return { file: path.basename(file), size: st.size, mtime: st.mtime.toISOString(), path: file };
  } catch (err) {
    log.warn({ err, path: partial }, 'guest panicked; memory dump failed');
    if (partial !== null) await unlink(partial).catch(() => undefined);
    return null;
  }
}

/** Creates (or checks) the guest's dump directory: a real directory, mode 0700, not a symlink. */
async function ensureDumpsDir(stateDir: string, name: string): Promise<string> {
  const dir = dumpsDir(stateDir, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  await chmod(dir, 0o700);
  // Left by a dump that never finished (the service stopped during it): never listed, removed now.
  for (const name of await readdir(dir)) {
    if (name.endsWith(PARTIAL_SUFFIX) && DUMP_FILE_PATTERN.test(name.slice(0, -PARTIAL_SUFFIX.length))) await unlink(path.join(dir, name));
  }
  return dir;
}

async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

/** Has QEMU write the dump into `file` and waits (polling query-dump) until it is done, failed, or too slow. */
async function runDump(exec: qmp.QmpExecutor, file: string, timeoutMs: number): Promise<void> {
  // A fresh name in our own directory: anything already there was not made by this dump.
  if (await lstat(file).then(() => true, () => false)) throw new Error(`${file} exists already`);
  const deadline = Date.now() + timeoutMs;
  await qmp.dumpGuestMemory(exec, `file:${file}`, { paging: false, detach: true });
  for (;;) {
    const { status, completed, total } = await qmp.queryDump(exec);
    if (status === 'completed') return;
    if (status === 'failed') throw new Error(`QEMU reports the dump failed after ${completed} of ${total} bytes`);
    if (Date.now() >= deadline) throw new Error(`the dump did not finish within ${timeoutMs / 1000} s (${completed} of ${total} bytes)`);
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
  }
}

/**
 * Checks what QEMU wrote without following links: a regular file with one link, not larger than a dump of
 * this guest can be; then makes it 0600 through the same descriptor.
 */
async function verifyDump(file: string, maxSize: number): Promise<Stats> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    if (st.nlink !== 1) throw new Error(`${file} has ${st.nlink} links`);
    if (st.size > maxSize) throw new Error(`${file} is ${st.size} bytes, more than a dump of this guest can be (${maxSize})`);
    await fh.chmod(0o600);
    return st;
  } finally {
    await fh.close();
  }
}

/** The dumps in `dir`, oldest first: regular files of the dump name pattern, by lstat (links not followed). */
export async function listDumps(dir: string): Promise<DumpEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const entries: DumpEntry[] = [];
  for (const name of names.filter((n) => DUMP_FILE_PATTERN.test(n)).sort()) {
    const full = path.join(dir, name);
    const st = await lstat(full).catch(() => null);
    if (st?.isFile()) entries.push({ file: name, size: st.size, mtime: st.mtime.toISOString(), path: full });
  }
  return entries;
}

/** Removes the oldest dumps beyond `keep`; returns the names removed. */
export async function pruneDumps(dir: string, keep: number): Promise<string[]> {
  const dumps = await listDumps(dir);
  const old = dumps.slice(0, Math.max(0, dumps.length - keep));
  for (const d of old) await unlink(d.path);
  return old.map((d) => d.file);
}

/** The dump for one guest of the driver, from its model (run state, memory) and its monitor. */
export async function dumpGuestAfterPanic(g: QemuGuest, settings: PanicDumpSettings, stateDir: string, logger: Logger): Promise<DumpEntry | null> {
  const model = await g.model();
  if (!model) {
    logger.warn({ instance: g.name }, 'guest panicked but its QEMU is gone; no memory dump');
    return null;
  }
  const uuid = g.uuid ?? model.uuid;
  const log = uuid ? logger.child({ instance_uuid: uuid }) : logger;
  return dumpPanickedGuest({ name: g.name, status: model.status, memoryBytes: model.memory.maximumBytes, exec: g.exec }, settings, stateDir, log);
}
