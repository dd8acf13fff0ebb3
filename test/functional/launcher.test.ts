// The bin scripts as an operator starts them: executed directly, the kernel runs the shebang, and
// novamon-compute's node flags (a capped young generation) are the ones the tests and the bench pass too.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { binArgs, shebangNodeFlags } from '../fixtures/launcher.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

describe('bin launchers', () => {
  it('novamon-compute runs from its shebang with the young generation capped', async () => {
    const bin = path.join(ROOT, 'bin', 'novamon-compute.js');
    expect(shebangNodeFlags(bin)).toEqual(['--max-semi-space-size=8']);
    const { stdout } = await run(bin, ['--help'], { cwd: '/', timeout: 30_000 });
    expect(stdout).toMatch(/^Usage: novamon-compute/m);
    // With those flags V8's new space stops at 2 x 8 MiB where it would grow to 2 x 16 MiB.
    const grow = `const keep = []; for (let i = 0; i < 6e5; i++) keep.push({ i, s: 'x' + i });
      console.log(require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)`;
    const newSpace = async (flags: string[]) => Number((await run(process.execPath, [...flags, '-e', grow], { timeout: 60_000 })).stdout.trim());
    expect(await newSpace(shebangNodeFlags(bin))).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(await newSpace([])).toBeGreaterThan(16 * 1024 * 1024);
    expect(binArgs('novamon-compute.js')).toEqual(['--max-semi-space-size=8', bin]);
  });

  it('the other binaries take no node flags', () => {
    for (const name of ['novamon-api.js', 'novamon-manage.js', 'novamon-novncproxy.js']) {
      expect(shebangNodeFlags(path.join(ROOT, 'bin', name))).toEqual([]);
    }
  });
});
