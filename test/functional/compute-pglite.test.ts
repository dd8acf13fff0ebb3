// The default deployment: novamon-compute on its embedded PGlite database. A cast from Nova's rpcapi
// leaves its rows there, and they are read back once the service has stopped and released the database.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/knex.js';
import { silentLogger } from '../../src/logging.js';
import { RABBIT_URL, runPython, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';

let compute: ComputeService;
let guest: FixtureGuest;
let opsPort: number;
const uuid = randomUUID();

beforeAll(async () => {
  opsPort = await freePort();
  compute = await startComputeService({ databaseUrl: '', config: { oslo_middleware: { enabled: true, port: opsPort } } });
  guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-0000001b', uuid });
});

afterAll(async () => {
  await guest?.stop();
  await compute?.cleanup();
});

it('answers /healthcheck and /metrics on its operations listener', async () => {
  const health = await fetch(`http://127.0.0.1:${opsPort}/healthcheck`);
  expect([health.status, await health.text()]).toEqual([200, 'OK']);
  await runPython('nova_rpcapi.py', {
    url: RABBIT_URL,
    exchange: compute.exchange,
    host: compute.host,
    instance: { uuid, id: 0x1b },
    ops: [{ method: 'get_console_output', args: { tail_length: 1 } }],
  });
  const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  expect(metrics).toMatch(/novamon_rpc_messages_total\{[^}]*method="get_console_output"[^}]*outcome="ok"[^}]*\} 1/);
  expect(metrics).toMatch(/novamon_qmp_connections\{[^}]*\} [1-9]/);
});

it('keeps the rows of a pause cast in PGlite, readable after the service stops', async () => {
  const out = await runPython<{ ok: boolean }[]>('nova_rpcapi.py', {
    url: RABBIT_URL,
    exchange: compute.exchange,
    host: compute.host,
    instance: { uuid, id: 0x1b, vm_state: 'active' },
    ops: [{ method: 'pause_instance' }, { method: 'get_console_output', args: { tail_length: 1 } }],
  });
  expect(out.map((o) => o.ok)).toEqual([true, true]);
  // A graceful stop finishes the cast in flight before the service releases the database.
  const { code } = await compute.stop();
  expect(code).toBe(0);

  const db = await createDatabase({ connection: '', statePath: compute.statePath, poolSize: 1, logger: silentLogger() });
  try {
    const row = await db.knex('instances').where({ uuid }).first();
    expect(row).toMatchObject({ name: 'instance-0000001b', vm_state: 'paused', power_state: 3, host: compute.host });
    const events = await db.knex('instance_actions_events as e').join('instance_actions as a', 'a.id', 'e.action_id').where('a.instance_uuid', uuid).select('a.action', 'e.event', 'e.result');
    expect(events).toEqual([{ action: 'pause', event: 'compute_pause_instance', result: 'Success' }]);
  } finally {
    await db.close();
  }
});
