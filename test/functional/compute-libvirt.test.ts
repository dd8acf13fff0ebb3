// novamon-compute with compute_driver = libvirt: Nova's own compute rpcapi calls it for a domain that a
// real libvirtd runs, and the answers come through libvirt's monitor passthrough and its own calls.

import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { createPgDatabase, RABBIT_URL, runPython, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';
import { ensureLibvirtd } from '../fixtures/libvirt-env.js';

interface NovaOutcome {
  ok: boolean;
  result?: unknown;
  class?: string;
}

let db: Awaited<ReturnType<typeof createPgDatabase>>;
let compute: ComputeService;
let domain: LibvirtDomain;

beforeAll(async () => {
  await ensureLibvirtd();
  domain = await startLibvirtDomain({});
  await domain.waitForConsole(FIXTURE_CONSOLE_LINE, 60_000);
  db = await createPgDatabase();
  compute = await startComputeService({ databaseUrl: db.url, config: { DEFAULT: { compute_driver: 'libvirt' } } });
});

afterAll(async () => {
  await compute?.cleanup();
  await domain?.remove();
  await db?.drop();
});

it('answers Nova\'s rpcapi for a libvirt domain: console, diagnostics, VNC, pause', async () => {
  const out = await runPython<NovaOutcome[]>('nova_rpcapi.py', {
    url: RABBIT_URL,
    exchange: compute.exchange,
    host: compute.host,
    instance: { uuid: domain.uuid, id: domain.id, vm_state: 'active' },
    ops: [
      { method: 'get_console_output', args: { tail_length: null } },
      { method: 'get_instance_diagnostics' },
      { method: 'get_vnc_console', args: { console_type: 'novnc' } },
      { method: 'pause_instance' },
    ],
  });
  expect(out.map((o) => o.ok), JSON.stringify(out)).toEqual([true, true, true, true]);
  expect(out[0]?.result as string).toContain(FIXTURE_CONSOLE_LINE);
  expect(out[1]?.result).toMatchObject({ __object__: 'Diagnostics', driver: 'libvirt', state: 'running', num_cpus: 1 });
  expect((out[2]?.result as { port: number }).port).toBeGreaterThanOrEqual(5900);

  const sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  try {
    const deadline = Date.now() + 15_000;
    let row: Record<string, unknown> | undefined;
    while (Date.now() < deadline) {
      row = (await sql.query('select vm_state, power_state from instances where uuid = $1', [domain.uuid])).rows[0];
      if (row?.['vm_state'] === 'paused') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(row).toMatchObject({ vm_state: 'paused', power_state: 3 });
    expect((await domain.virsh('domstate', domain.name)).trim()).toBe('paused');
  } finally {
    await sql.end();
  }
});
