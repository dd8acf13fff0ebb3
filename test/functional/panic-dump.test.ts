// The memory dump of a panicked guest, end to end: novamon-compute (qemu driver, PostgreSQL) with
// `[qemu] panic_dump = true` watching a real QEMU guest whose boot sector panics (pvpanic, action pause).
// The dump is taken before the power-state sync's stop quits QEMU: the ELF file is whole, and the guest
// ends stopped. With the option at its default, a panic writes nothing.

import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildVariantImage, PVPANIC_ARGS } from '../fixtures/boot-variants.js';
import { createPgDatabase, startComputeService, type ComputeService, until as untilProbe } from '../fixtures/compute-service.js';
import { killAllFixtureGuests, startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const MiB = 1024 ** 2;
/** The fixture guests' -m 64. */
const GUEST_MEMORY = 64 * MiB;
const DUMPED = 'instance-00000161';
const NOT_DUMPED = 'instance-00000162';

interface Dump {
  file: string;
  size: number;
  mtime: string;
  path: string;
}

async function manage(configPath: string, ...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/novamon-manage.js'), '--config-file', configPath, ...args], { cwd: ROOT });
  return stdout;
}

/** Where the last segment or section the ELF headers describe ends, and how many bytes of memory its PT_LOADs hold. */
async function elfExtent(file: string): Promise<{ magic: string; end: number; loadBytes: number }> {
  const fh = await open(file, 'r');
  try {
    const header = Buffer.alloc(64);
    await fh.read(header, 0, 64, 0);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await fh.read(table, 0, table.length, phoff);
    let end = phoff + table.length;
    let loadBytes = 0;
    for (let i = 0; i < phnum; i++) {
      const ph = table.subarray(i * phentsize);
      const filesz = Number(ph.readBigUInt64LE(0x20));
      end = Math.max(end, Number(ph.readBigUInt64LE(0x08)) + filesz);
      if (ph.readUInt32LE(0) === 1) loadBytes += filesz;
    }
    // QEMU 7.2 also writes section headers (a string table, at the end of the file).
    const shoff = Number(header.readBigUInt64LE(0x28));
    const shentsize = header.readUInt16LE(0x3a);
    const shnum = header.readUInt16LE(0x3c);
    const sections = Buffer.alloc(shentsize * shnum);
    await fh.read(sections, 0, sections.length, shoff);
    end = Math.max(end, shoff + sections.length);
    for (let i = 0; i < shnum; i++) {
      const sh = sections.subarray(i * shentsize);
      if (sh.readUInt32LE(0x04) !== 8) end = Math.max(end, Number(sh.readBigUInt64LE(0x18)) + Number(sh.readBigUInt64LE(0x20)));
    }
    return { magic: header.subarray(0, 4).toString('latin1'), end, loadBytes };
  } finally {
    await fh.close();
  }
}

describe('memory dump of a panicked guest ([qemu] panic_dump)', () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let sql: pg.Client;
  let on: ComputeService;
  let off: ComputeService;
  let dumped: FixtureGuest;

  const until = <T>(what: string, probe: () => Promise<T | null>, ms = 90_000): Promise<T> =>
    untilProbe(what, probe, () => `${on.logs().slice(-3000)}\n${off?.logs().slice(-2000)}`, { ms });

  const stopped = (name: string) =>
    until(`${name} stopped`, async () => {
      const r = await sql.query<{ power_state: number; vm_state: string; task_state: string | null }>(
        'select power_state, vm_state, task_state from instances where display_name = $1',
        [name],
      );
      const row = r.rows[0];
      return row && row.vm_state === 'stopped' && row.power_state === 4 && row.task_state === null ? row : null;
    });

  beforeAll(async () => {
    db = await createPgDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    const config = { DEFAULT: { shutdown_timeout: 30, sync_power_state_interval: -1 } };
    // Two hosts on one database (one after the other: each runs db sync): one dumps, the other has the option at its default.
    on = await startComputeService({ databaseUrl: db.url, config: { ...config, qemu: { panic_dump: true } } });
    off = await startComputeService({ databaseUrl: db.url, config });
    [dumped] = await Promise.all([
      startFixtureGuest({ instancesPath: on.instancesPath, name: DUMPED, image: buildVariantImage('panic'), extraArgs: PVPANIC_ARGS }),
      startFixtureGuest({ instancesPath: off.instancesPath, name: NOT_DUMPED, image: buildVariantImage('panic'), extraArgs: PVPANIC_ARGS }),
    ]);
  }, 180_000);

  afterAll(async () => {
    await on?.cleanup();
    await off?.cleanup();
    await killAllFixtureGuests();
    await sql?.end();
    await db?.drop();
  });

  it('dumps the guest\'s whole memory as ELF before the stop, lists it, and the guest ends stopped', async () => {
    const dumps = await until('a dump listed by novamon-manage instance dumps', async () => {
      const list = JSON.parse(await manage(on.configPath, 'instance', 'dumps', DUMPED)) as Dump[];
      return list.length > 0 ? list : null;
    });
    await stopped(DUMPED);
    expect(dumps).toHaveLength(1);
    const [dump] = dumps as [Dump];
    const dir = path.join(on.statePath, 'qemu', 'dumps', DUMPED);
    expect(dump.path).toBe(path.join(dir, dump.file));
    expect(dump.file).toMatch(/^\d{8}T\d{6}\.\d{3}Z\.elf$/);
    // About the guest's memory: all of its RAM, plus the BIOS and ELF headers.
    expect(dump.size).toBeGreaterThanOrEqual(GUEST_MEMORY);
    expect(dump.size).toBeLessThan(GUEST_MEMORY + 2 * MiB);
    // Whole: the last segment the ELF header describes ends where the file ends (a dump cut short by the
    // stop's quit would not), and its PT_LOAD segments hold the guest's RAM.
    const elf = await elfExtent(dump.path);
    expect(elf.magic).toBe('\x7fELF');
    expect(elf.end).toBe(dump.size);
    expect(elf.loadBytes).toBeGreaterThanOrEqual(GUEST_MEMORY);
    expect(statSync(dump.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(dumped.currentPid()).toBeNull();
    // The log says so, before QEMU was quit by the stop.
    const lines = on.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const dumpedAt = lines.findIndex((l) => l['msg'] === 'guest panicked; its memory was dumped');
    const stoppedAt = lines.findIndex((l) => l['msg'] === 'lifecycle event' && l['transition'] === 'stopped' && l['instance_uuid'] === dumped.uuid);
    expect(lines[dumpedAt]).toMatchObject({ level: 40, instance: DUMPED, path: dump.path, bytes: dump.size });
    expect(stoppedAt).toBeGreaterThan(dumpedAt);
  });

  it('writes nothing when panic_dump is off (the default)', async () => {
    await stopped(NOT_DUMPED);
    expect(JSON.parse(await manage(off.configPath, 'instance', 'dumps', NOT_DUMPED))).toEqual([]);
    expect(existsSync(path.join(off.statePath, 'qemu', 'dumps'))).toBe(false);
    expect(off.logs()).not.toContain('memory was dumped');
  });

  it('refuses a name that is not an instance name before building any path', async () => {
    await expect(manage(on.configPath, 'instance', 'dumps', '../qemu')).rejects.toMatchObject({ stderr: expect.stringMatching(/InvalidInstanceName/) });
  });
});
