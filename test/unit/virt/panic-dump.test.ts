// The panic dump's pieces that need no QEMU: refusals (size, free space, unknown memory, a guest no longer
// panicked), what is done with the file QEMU writes (checked without following links, 0600, removed when
// the dump failed or timed out), retention, and the listing novamon-manage prints.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, readFileSync, truncateSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QmpExecutor } from '../../../src/qmp/commands.js';
import {
  dumpFileName,
  dumpPanickedGuest,
  dumpRefusal,
  dumpsDir,
  listDumps,
  pruneDumps,
  type PanicDumpSettings,
} from '../../../src/virt/qemu/panic-dump.js';

const MiB = 1024 ** 2;
const NAME = 'instance-0000002a';
const SETTINGS: PanicDumpSettings = { enabled: true, maxBytes: 64 * MiB, keep: 3, timeoutMs: 5000 };

let state: string;
let lines: Record<string, unknown>[];
const logger = () => pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });

beforeEach(() => {
  state = mkdtempSync(path.join(tmpdir(), 'novamon-panic-dump-'));
  lines = [];
});
afterEach(() => rmSync(state, { recursive: true, force: true }));

/** Stands in for QEMU's monitor: records commands; `write` says what it puts at the dump's path. */
function fakeQemu(opts: { write?: (file: string) => void; statuses?: string[]; onQuery?: () => Promise<void> } = {}) {
  const calls: string[] = [];
  const statuses = [...(opts.statuses ?? ['active', 'completed'])];
  const exec: QmpExecutor = (command, args) => {
    calls.push(command);
    if (command === 'dump-guest-memory') {
      const protocol = String(args?.['protocol']);
      expect(args).toMatchObject({ paging: false, detach: true, format: 'elf' });
      expect(protocol.startsWith('file:')).toBe(true);
      (opts.write ?? ((f: string) => writeFileSync(f, Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(MiB)]), { mode: 0o400 })))(protocol.slice(5));
      return Promise.resolve({});
    }
    if (command === 'query-dump') {
      const status = statuses.length > 1 ? statuses.shift() : statuses[0];
      return (opts.onQuery?.() ?? Promise.resolve()).then(() => ({ status, completed: status === 'completed' ? MiB : 0, total: MiB }));
    }
    return Promise.reject(new Error(`unexpected ${command}`));
  };
  return { exec, calls };
}

const target = (exec: QmpExecutor, memoryBytes: number | null = 2 * MiB, status = 'guest-panicked') => ({ name: NAME, status, memoryBytes, exec });
const dir = () => dumpsDir(path.join(state, 'qemu'), NAME);
const warnings = () => lines.filter((l) => l['level'] === 40).map((l) => String(l['msg']) + ' ' + String(l['reason'] ?? (l['err'] as { message?: string } | undefined)?.message ?? ''));

describe('panic dump', () => {
  it('has QEMU write an ELF file into a 0700 directory of the guest, then makes it 0600 and logs where', async () => {
    const { exec, calls } = fakeQemu();
    const entry = await dumpPanickedGuest(target(exec), SETTINGS, path.join(state, 'qemu'), logger());
    expect(entry).not.toBeNull();
    expect(calls).toEqual(['dump-guest-memory', 'query-dump', 'query-dump']);
    expect(path.dirname(entry!.path)).toBe(path.join(state, 'qemu', 'dumps', NAME));
    expect(entry!.file).toMatch(/^\d{8}T\d{6}\.\d{3}Z\.elf$/);
    expect(entry!.size).toBe(MiB + 4);
    expect(statSync(entry!.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir()).mode & 0o777).toBe(0o700);
    expect(readFileSync(entry!.path).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(lines.find((l) => l['msg'] === 'guest panicked; its memory was dumped')).toMatchObject({ level: 40, path: entry!.path, bytes: MiB + 4 });
  });

  it('lists nothing while QEMU writes, and clears what an interrupted dump left', async () => {
    mkdirSync(dir(), { recursive: true });
    const stale = path.join(dir(), '20260101T000000.000Z.elf.partial');
    writeFileSync(stale, 'cut short');
    const seen: string[][] = [];
    const { exec } = fakeQemu({
      onQuery: async () => {
        seen.push(readdirSync(dir()));
        expect(await listDumps(dir())).toEqual([]);
      },
    });
    const entry = await dumpPanickedGuest(target(exec), SETTINGS, path.join(state, 'qemu'), logger());
    expect(seen[0]).toEqual([`${entry!.file}.partial`]);
    expect(readdirSync(dir())).toEqual([entry!.file]);
  });

  it('refuses, without a command to QEMU, a guest over panic_dump_max_bytes or of unknown memory', async () => {
    for (const memory of [64 * MiB + 1, null]) {
      const { exec, calls } = fakeQemu();
      expect(await dumpPanickedGuest(target(exec, memory), SETTINGS, path.join(state, 'qemu'), logger())).toBeNull();
      expect(calls).toEqual([]);
    }
    expect(warnings()).toEqual([
      `guest panicked; memory dump refused the guest has ${64 * MiB + 1} bytes of memory, over [qemu] panic_dump_max_bytes (${64 * MiB})`,
      'guest panicked; memory dump refused the guest\'s memory size is unknown',
    ]);
    expect(readdirSync(dir())).toEqual([]);
  });

  it('refuses when the disk cannot hold the memory plus 10%', () => {
    expect(dumpRefusal(100 * MiB, 110 * MiB, 4096 * MiB)).toBeNull();
    expect(dumpRefusal(100 * MiB, 110 * MiB - 1, 4096 * MiB)).toMatch(/bytes free on the dump directory's filesystem, 115343360 needed/);
    expect(dumpRefusal(4096 * MiB, 1 << 30, 4096 * MiB)).toMatch(/free/);
  });

  it('does nothing for a guest that is no longer stopped in guest-panicked', async () => {
    const { exec, calls } = fakeQemu();
    expect(await dumpPanickedGuest(target(exec, MiB, 'shutdown'), SETTINGS, path.join(state, 'qemu'), logger())).toBeNull();
    expect(calls).toEqual([]);
  });

  it('removes what QEMU wrote when the dump fails or outlasts panic_dump_timeout', async () => {
    const failed = fakeQemu({ statuses: ['active', 'failed'] });
    expect(await dumpPanickedGuest(target(failed.exec), SETTINGS, path.join(state, 'qemu'), logger())).toBeNull();
    const slow = fakeQemu({ statuses: ['active'] });
    expect(await dumpPanickedGuest(target(slow.exec), { ...SETTINGS, timeoutMs: 600 }, path.join(state, 'qemu'), logger())).toBeNull();
    expect(readdirSync(dir())).toEqual([]);
    expect(warnings()).toEqual([
      expect.stringMatching(/memory dump failed QEMU reports the dump failed after 0 of 1048576 bytes/),
      expect.stringMatching(/memory dump failed the dump did not finish within 0.6 s/),
    ]);
  });

  it('refuses a dump path that became a symlink, a hard link or an oversized file, touching nothing else', async () => {
    const victim = path.join(state, 'victim');
    writeFileSync(victim, 'precious', { mode: 0o644 });
    const cases: Array<(f: string) => void> = [
      (f) => symlinkSync(victim, f),
      (f) => execFileSync('ln', [victim, f]),
      (f) => {
        writeFileSync(f, '');
        truncateSync(f, 2 * MiB + 256 * MiB + 1);
      },
    ];
    for (const write of cases) {
      const { exec } = fakeQemu({ write });
      expect(await dumpPanickedGuest(target(exec), SETTINGS, path.join(state, 'qemu'), logger())).toBeNull();
    }
    expect(readdirSync(dir())).toEqual([]);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(warnings().map((w) => w.replace(/\/\S+/g, 'F'))).toEqual([
      expect.stringMatching(/ELOOP/),
      'guest panicked; memory dump failed F has 2 links',
      expect.stringMatching(/is 270532609 bytes, more than a dump of this guest can be/),
    ]);
  });

  it('keeps panic_dump_keep dumps per guest, removing the oldest', async () => {
    mkdirSync(dir(), { recursive: true });
    const old = ['20260101T000000.000Z.elf', '20260102T000000.000Z.elf', '20260103T000000.000Z.elf'];
    for (const f of old) writeFileSync(path.join(dir(), f), 'old');
    writeFileSync(path.join(dir(), 'notes.txt'), 'operator notes');
    const { exec } = fakeQemu();
    const entry = await dumpPanickedGuest(target(exec), SETTINGS, path.join(state, 'qemu'), logger());
    expect(readdirSync(dir()).sort()).toEqual([...old.slice(1), entry!.file, 'notes.txt'].sort());
  });

  it('counts and removes only regular dump files', async () => {
    mkdirSync(dir(), { recursive: true });
    const outside = path.join(state, 'outside.elf');
    writeFileSync(outside, 'not ours');
    symlinkSync(outside, path.join(dir(), '20250101T000000.000Z.elf'));
    for (const f of ['20260101T000000.000Z.elf', '20260102T000000.000Z.elf']) writeFileSync(path.join(dir(), f), 'x');
    expect(await pruneDumps(dir(), 1)).toEqual(['20260101T000000.000Z.elf']);
    expect(readFileSync(outside, 'utf8')).toBe('not ours');
    expect(readdirSync(dir()).sort()).toEqual(['20250101T000000.000Z.elf', '20260102T000000.000Z.elf']);
  });
});

describe('listing dumps', () => {
  it('lists regular dump files oldest first with size, mtime and path, ignoring symlinks, FIFOs and directories', async () => {
    mkdirSync(dir(), { recursive: true });
    const a = path.join(dir(), '20260102T030405.006Z.elf');
    const b = path.join(dir(), '20251231T235959.999Z.elf');
    writeFileSync(a, Buffer.alloc(10));
    writeFileSync(b, Buffer.alloc(3));
    utimesSync(b, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
    symlinkSync(a, path.join(dir(), '20260103T000000.000Z.elf'));
    execFileSync('mkfifo', [path.join(dir(), '20260104T000000.000Z.elf')]);
    mkdirSync(path.join(dir(), '20260105T000000.000Z.elf'));
    expect(await listDumps(dir())).toEqual([
      { file: '20251231T235959.999Z.elf', size: 3, mtime: '2026-01-01T00:00:00.000Z', path: b },
      { file: '20260102T030405.006Z.elf', size: 10, mtime: statSync(a).mtime.toISOString(), path: a },
    ]);
  });

  it('is empty for a guest that never had one', async () => {
    expect(await listDumps(dir())).toEqual([]);
  });

  it('builds paths only from names inside the dumps directory, and names files by UTC time', () => {
    expect(() => dumpsDir(state, '../etc')).toThrow(/resolves outside/);
    expect(dumpFileName(new Date('2026-12-02T02:45:00.123Z'))).toBe('20261202T024500.123Z.elf');
  });
});
