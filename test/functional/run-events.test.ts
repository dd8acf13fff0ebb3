// Why a guest went down, end to end: novamon-compute (qemu driver, PostgreSQL) watching real QEMU guests
// whose boot sectors panic (pvpanic), power themselves off (ACPI S5) and reset themselves (keyboard
// controller). Each event is an instance action with QEMU's reason and whether the guest asked for it;
// the panic is also a fault, and the panicked guest's power_state becomes CRASHED.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgDatabase, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { buildVariantImage, PVPANIC_ARGS } from '../fixtures/boot-variants.js';
import { killAllFixtureGuests, startFixtureGuest } from '../fixtures/guest.js';

const PANIC = 'instance-00000151';
const HALT = 'instance-00000152';
const RESET = 'instance-00000153';

interface EventRow {
  action: string;
  event: string;
  result: string;
  details: string | null;
}

describe('guest shutdowns, resets and panics recorded with QEMU\'s reason', () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let sql: pg.Client;
  let compute: ComputeService;

  const events = async (name: string): Promise<EventRow[]> =>
    (
      await sql.query<EventRow>(
        `select a.action, e.event, e.result, e.details from instance_actions a join instance_actions_events e on e.action_id = a.id
         join instances i on i.uuid = a.instance_uuid where (i.hostname = $1 or i.display_name = $1) and e.result is not null order by e.id`,
        [name],
      )
    ).rows;

  async function until<T>(what: string, probe: () => Promise<T | null>, ms = 90_000, everyMs = 250): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await probe();
      if (v !== null) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${compute.logs().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  beforeAll(async () => {
    db = await createPgDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    compute = await startComputeService({ databaseUrl: db.url, config: { DEFAULT: { shutdown_timeout: 30, sync_power_state_interval: -1 } } });
    await Promise.all([
      startFixtureGuest({ instancesPath: compute.instancesPath, name: PANIC, image: buildVariantImage('panic'), extraArgs: PVPANIC_ARGS }),
      startFixtureGuest({ instancesPath: compute.instancesPath, name: HALT, image: buildVariantImage('shutdown') }),
      startFixtureGuest({ instancesPath: compute.instancesPath, name: RESET, image: buildVariantImage('reset') }),
    ]);
  }, 120_000);

  afterAll(async () => {
    await compute?.cleanup();
    await killAllFixtureGuests();
    await sql?.end();
    await db?.drop();
  });

  it('records a guest-initiated power-off as guest_shutdown with reason guest-shutdown, guest=true', async () => {
    const rows = await until('the SHUTDOWN event', async () => {
      const r = (await events(HALT)).filter((e) => e.event === 'SHUTDOWN');
      return r.length > 0 ? r : null;
    });
    expect(rows[0]).toEqual({ action: 'guest_shutdown', event: 'SHUTDOWN', result: 'Success', details: 'reason=guest-shutdown guest=true' });
  });

  it('records each guest-initiated reset as guest_reset with reason guest-reset, guest=true', async () => {
    const rows = await until('two RESET events', async () => {
      const r = (await events(RESET)).filter((e) => e.event === 'RESET');
      return r.length >= 2 ? r : null;
    });
    for (const r of rows) expect(r).toEqual({ action: 'guest_reset', event: 'RESET', result: 'Success', details: 'reason=guest-reset guest=true' });
  });

  it('records a panic as an Error event and a fault, and the guest becomes CRASHED', async () => {
    const rows = await until('the GUEST_PANICKED event', async () => {
      const r = (await events(PANIC)).filter((e) => e.event === 'GUEST_PANICKED');
      return r.length > 0 ? r : null;
    });
    expect(rows[0]).toMatchObject({ action: 'guest_panicked', event: 'GUEST_PANICKED', result: 'Error' });
    expect(rows[0]?.details).toContain('action=pause');
    const fault = await sql.query<{ message: string }>(
      `select f.message from instance_faults f join instances i on i.uuid = f.instance_uuid where i.display_name = $1 and f.message like 'Guest panicked%'`,
      [PANIC],
    );
    expect(fault.rows.length).toBe(1);
    // Nova's power state for a panicked guest; the power-state sync then stops it, as Nova does.
    await until('power_state CRASHED (6)', async () => {
      const r = await sql.query<{ power_state: number }>('select power_state from instances where display_name = $1', [PANIC]);
      return r.rows[0]?.power_state === 6 ? true : null;
      // The power-state sync stops a crashed guest: on an idle machine CRASHED may be short-lived.
    }, 30_000, 20);
  });
});
