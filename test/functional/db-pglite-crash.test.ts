// PGlite survives its process being killed mid-write: a child process inserts in a loop (two rows per
// transaction), is killed with SIGKILL, and the database then reopens with every reported commit present,
// no half transaction, and accepts writes. Also checks the one-process lock while the writer is alive.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseLocked } from '../../src/db/errors.js';
import { createDatabase, type Database } from '../../src/db/knex.js';
import { seedPgliteDataDir } from '../../src/db/test-database.js';
import { silentLogger } from '../../src/logging.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const src = (p: string) => pathToFileURL(path.join(repoRoot, 'src/db', p)).href;

const writerScript = `
import { createDatabase } from ${JSON.stringify(src('knex.ts'))};
import { syncSchema } from ${JSON.stringify(src('migrate.ts'))};
import { silentLogger } from ${JSON.stringify(src('../logging.ts'))};
const db = await createDatabase({ connection: '', statePath: process.argv[2], poolSize: 1, logger: silentLogger() });
await syncSchema(db);
for (let n = 1; ; n++) {
  await db.knex.transaction(async (trx) => {
    await trx('instance_faults').insert({ instance_uuid: 'crash-test', code: n, message: 'm'.repeat(200), details: 'd'.repeat(2000) });
    await trx('monitor_audit').insert({ instance_uuid: 'crash-test', kind: 'qmp', command: 'query-status', allowed: true, result: 'ok', duration_ms: n });
  });
  process.stdout.write('committed ' + n + '\\n');
}
`;

function waitForCommits(child: ChildProcess, count: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let last = 0;
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`writer committed ${last} rows in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^committed (\d+)$/.exec(line);
        if (m) last = Number(m[1]);
      }
      if (last >= count) {
        clearTimeout(timer);
        resolve(last);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (last < count) reject(new Error(`writer exited with ${code} after ${last} commits; stderr: ${stderr}`));
    });
  });
}

describe('PGlite after SIGKILL', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  let db: Database | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    child = db = dir = undefined;
  });

  it('reopens with the committed rows and stays usable', { timeout: 300_000 }, async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'novamon-crash-'));
    const script = path.join(dir, 'writer.mts');
    writeFileSync(script, writerScript);
    const statePath = path.join(dir, 'state');
    await seedPgliteDataDir(path.join(statePath, 'db'));
    child = spawn(process.execPath, ['--import', 'tsx', script, statePath], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const running = child;
    const exited = new Promise<NodeJS.Signals | null>((resolve) => running.once('exit', (_code, signal) => resolve(signal)));

    await waitForCommits(running, 100, 180_000);

    // While the writer lives, a second process may not open the same directory.
    await expect(createDatabase({ connection: '', statePath, poolSize: 1, logger: silentLogger() })).rejects.toBeInstanceOf(DatabaseLocked);

    // Kill it while it is still inserting; whatever it reported after this point may or may not be there.
    let reported = 0;
    const counter = (d: Buffer) => {
      for (const m of d.toString().matchAll(/committed (\d+)/g)) reported = Math.max(reported, Number(m[1]));
    };
    running.stdout?.on('data', counter);
    await new Promise((r) => setTimeout(r, 150));
    running.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    db = await createDatabase({ connection: '', statePath, poolSize: 1, logger: silentLogger() });
    const faults = Number(((await db.knex('instance_faults').count('* as c')) as Array<{ c: unknown }>)[0]?.c);
    const audits = Number(((await db.knex('monitor_audit').count('* as c')) as Array<{ c: unknown }>)[0]?.c);
    expect(faults).toBeGreaterThanOrEqual(Math.max(reported, 100));
    // Both inserts of a transaction, or neither.
    expect(audits).toBe(faults);
    const maxCode = Number(((await db.knex('instance_faults').max('code as m')) as Array<{ m: unknown }>)[0]?.m);
    expect(maxCode).toBe(faults);

    await db.knex('instance_faults').insert({ instance_uuid: 'after-crash', code: 1 });
    expect(await db.knex('instance_faults').where({ instance_uuid: 'after-crash' }).first()).toBeTruthy();
    await db.close();

    // And once more after a clean close.
    db = await createDatabase({ connection: '', statePath, poolSize: 1, logger: silentLogger() });
    expect(await db.knex('instance_faults').where({ instance_uuid: 'after-crash' }).first()).toBeTruthy();
  });
});
