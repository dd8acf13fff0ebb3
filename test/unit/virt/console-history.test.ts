import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import { capConsoleLogs, tailAtLine } from '../../../src/virt/console-history.js';

let dir: string;
const log = silentLogger();

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'novamon-history-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('capping a console log before a relaunch', () => {
  it('keeps the last whole lines within the cap, and nothing else in the directory', async () => {
    const file = path.join(dir, 'g.console.log');
    const lines = Array.from({ length: 50 }, (_, i) => `line ${String(i).padStart(3, '0')}\n`).join('');
    await writeFile(file, lines);
    await capConsoleLogs([file], log, 100);
    const kept = await readFile(file, 'latin1');
    expect(kept.length).toBeLessThanOrEqual(100);
    expect(kept.endsWith('line 049\n')).toBe(true);
    expect(kept.startsWith('line ')).toBe(true);
    expect(await readdir(dir)).toEqual(['g.console.log']);
  });

  it('leaves small, absent and non-regular logs alone', async () => {
    const small = path.join(dir, 'small.log');
    await writeFile(small, 'short\n');
    const link = path.join(dir, 'link.log');
    await symlink('/etc/passwd', link);
    await capConsoleLogs([small, link, path.join(dir, 'absent.log')], log, 100);
    expect(await readFile(small, 'latin1')).toBe('short\n');
    expect((await readdir(dir)).sort()).toEqual(['link.log', 'small.log']);
  });

  it('cuts at a newline near the cut, else at the byte', () => {
    expect(tailAtLine(Buffer.from('aaaa\nbbbb\n'), 7).toString()).toBe('bbbb\n');
    expect(tailAtLine(Buffer.from('x'.repeat(20)), 5).toString()).toBe('xxxxx');
  });
});
