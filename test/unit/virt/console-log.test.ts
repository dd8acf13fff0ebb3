import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConsoleNotAvailable } from '../../../src/exception.js';
import { readTail, UnsafeConsoleLog } from '../../../src/virt/console-log.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'novamon-console-log-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function refusal(fn: () => unknown): UnsafeConsoleLog {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConsoleNotAvailable);
    const cause = (err as Error).cause;
    expect(cause).toBeInstanceOf(UnsafeConsoleLog);
    return cause as UnsafeConsoleLog;
  }
  throw new Error('expected a refusal');
}

describe('readTail', () => {
  test('reads the last bytes of a regular file; a missing file is null', async () => {
    const f = path.join(dir, 'ok.console.log');
    await writeFile(f, 'a'.repeat(10) + 'tail');
    expect(readTail(f, 4)?.toString()).toBe('tail');
    expect(readTail(path.join(dir, 'absent.console.log'))).toBeNull();
  });

  test('a symlink to a secret file is refused, its content never returned', async () => {
    const secret = path.join(dir, 'shadow');
    await writeFile(secret, 'root:$6$secret-hash:19000:0:99999:7:::\n', { mode: 0o600 });
    const link = path.join(dir, 'evil.console.log');
    await symlink(secret, link);
    expect(refusal(() => readTail(link)).kind).toBe('symbolic link');
  });

  test('a FIFO is refused at once, without waiting for a writer', async () => {
    const fifo = path.join(dir, 'fifo.console.log');
    execFileSync('mkfifo', [fifo]);
    // A writer that turns up after 2 s: a reader that blocked in open() would return only then.
    const writer = spawn('timeout', ['5', 'sh', '-c', `sleep 2; echo x > '${fifo}'`], { stdio: 'ignore' });
    try {
      const t0 = performance.now();
      expect(refusal(() => readTail(fifo)).kind).toBe('FIFO');
      expect(performance.now() - t0).toBeLessThan(500);
    } finally {
      writer.kill();
    }
  });

  test('a directory is refused', async () => {
    const d = path.join(dir, 'dir.console.log');
    await mkdir(d);
    expect(refusal(() => readTail(d)).kind).toBe('directory');
  });
});
