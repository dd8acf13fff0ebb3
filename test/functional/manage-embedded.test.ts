// novamon-manage beside a running novamon-compute on the embedded PGlite database, which only one
// process can open: `instance list`, `show`, `actions`, `faults` and `db version` ask the running service
// over RPC and print what they print from the database; writes (adopt, db purge) refuse and say why, and
// work once the service is gone; a service that does not answer is named.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RABBIT_URL, startComputeService, uniqueSuffix, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NAME = 'instance-0000002c';
const uuid = randomUUID();
let statePath: string;
let compute: ComputeService;
let guest: FixtureGuest;

interface ManageResult {
  code: number;
  stdout: string;
  stderr: string;
}

function manage(configPath: string, args: string[]): Promise<ManageResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin/novamon-manage.js'), '--config-file', configPath, ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  // The guest runs before the service starts: start-up discovery writes its row into PGlite.
  statePath = mkdtempSync(path.join(tmpdir(), 'novamon-manage-embedded-'));
  guest = await startFixtureGuest({ instancesPath: path.join(statePath, 'instances'), name: NAME, uuid });
  compute = await startComputeService({ databaseUrl: '', statePath, config: { DEFAULT: { sync_power_state_interval: -1 } } });
}, 150_000);

afterAll(async () => {
  await guest?.stop();
  await compute?.cleanup();
  if (statePath) rmSync(statePath, { recursive: true, force: true });
});

it('lists and shows the guest through the running service, then prints the same from the database once it stops', async () => {
  const list = await manage(compute.configPath, ['instance', 'list']);
  expect(list.code, list.stderr).toBe(0);
  expect(list.stderr).toMatch(/embedded database is held by process \d+; asking the running novamon-compute over RPC/);
  const rows = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
  expect(rows).toEqual([expect.objectContaining({ uuid, name: NAME, host: compute.host, powerState: 1, deleted: 0 })]);

  // Independent commands, run side by side (each is a node process on a loaded machine).
  const [byName, byUuid, missing, adopt, purge] = await Promise.all([
    manage(compute.configPath, ['instance', 'show', NAME]),
    manage(compute.configPath, ['instance', 'show', uuid.toUpperCase()]),
    manage(compute.configPath, ['instance', 'show', 'instance-000000ff']),
    manage(compute.configPath, ['instance', 'adopt', NAME, '--project', 'p1', '--user', 'u1']),
    manage(compute.configPath, ['db', 'purge']),
  ]);
  expect(byName.code, byName.stderr).toBe(0);
  expect(JSON.parse(byName.stdout)).toEqual(rows[0]);
  expect(JSON.parse(byUuid.stdout)).toEqual(rows[0]);
  expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/InstanceNotFound: Instance instance-000000ff could not be found/)]);
  expect(adopt.code).toBe(1);
  expect(adopt.stderr).toMatch(/instance adopt writes the database, and the embedded database \S+ is held by process \d+ \(a running novamon-compute\): stop the service first, or point \[database\] connection at PostgreSQL/);
  expect(purge.code).toBe(1);
  expect(purge.stderr).toMatch(/db purge writes the database, and the embedded database \S+ is held by process \d+/);

  // The records of an action taken through the service, read back through it: actions, faults, schema version.
  const pause = await manage(compute.configPath, ['rpc', 'call', 'pause_instance', '--instance', NAME]);
  expect(pause.code, pause.stderr).toBe(0);
  const reads = [['instance', 'actions', NAME], ['instance', 'faults', uuid], ['db', 'version']];
  const viaService = await Promise.all(reads.map((args) => manage(compute.configPath, args)));
  for (const r of viaService) {
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/asking the running novamon-compute over RPC/);
  }
  const [actions, faults, version] = viaService.map((r) => JSON.parse(r.stdout) as unknown);
  expect(actions).toEqual([expect.objectContaining({ action: 'pause', instanceUuid: uuid, events: [expect.objectContaining({ event: 'compute_pause_instance', result: 'Success' })] })]);
  expect(faults).toEqual([]);
  expect(version).toMatchObject({ pending: [] });

  const { code } = await compute.stop();
  expect(code).toBe(0);
  const direct = await manage(compute.configPath, ['instance', 'list']);
  expect(direct.code, direct.stderr).toBe(0);
  expect(direct.stderr).not.toMatch(/asking the running/);
  expect(JSON.parse(direct.stdout)).toEqual([{ ...rows[0], vmState: 'paused', powerState: 3, updatedAt: expect.any(String) }]);
  // The same records, read from the database itself once the service is gone.
  // One at a time: only one process can open the embedded database.
  const fromDb: unknown[] = [];
  for (const args of reads) {
    const r = await manage(compute.configPath, args);
    expect(r.code, r.stderr).toBe(0);
    fromDb.push(JSON.parse(r.stdout));
  }
  expect(fromDb).toEqual([actions, faults, version]);
  // And the writes it refused: the housekeeping round runs on the embedded database too.
  const purged = await manage(compute.configPath, ['db', 'purge']);
  expect(purged.code, purged.stderr).toBe(0);
  expect(JSON.parse(purged.stdout)).toMatchObject({ expiredTokens: 0, diagnosticsDropped: 0, hosts: compute.host });
}, 120_000);

it('names the holder when no service answers within rpc_response_timeout', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'novamon-manage-silent-'));
  try {
    const suffix = uniqueSuffix();
    const configPath = path.join(dir, 'novamon.conf');
    writeFileSync(
      configPath,
      `[DEFAULT]\nhost = silent-${suffix}\ncontrol_exchange = novamon_test_${suffix}\ntransport_url = ${RABBIT_URL}\nstate_path = ${dir}\nrpc_response_timeout = 2\n`,
    );
    // A live process (this one) holds the embedded database's lock, and nothing serves the host's queue.
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'db.lock'), `${process.pid}\n`);
    const r = await manage(configPath, ['instance', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`held by a running novamon-compute \\(process ${process.pid}\\) that did not answer over RPC within 2 s`));
    expect(r.stdout).toBe('');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
