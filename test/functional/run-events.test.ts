// Why a guest went down, end to end: novamon-compute (qemu driver, PostgreSQL) watching real QEMU guests
// whose boot sectors panic (pvpanic), power themselves off (ACPI S5) and reset themselves (keyboard
// controller). Each event is an instance action with QEMU's reason and whether the guest asked for it;
// the panic is also a fault, and the panicked guest's power_state becomes CRASHED.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgDatabase, startComputeService, type ComputeService, until as untilProbe } from '../fixtures/compute-service.js';
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

  const until = <T>(what: string, probe: () => Promise<T | null>, ms = 90_000, everyMs = 250): Promise<T> =>
    untilProbe(what, probe, () => compute.logs().slice(-3000), { ms, everyMs });

  beforeAll(async () => {
    db = await createPgDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    compute = await startComputeService({ databaseUrl: db.url, config: { DEFAULT: { shutdown_timeout: 30, sync_power_state_interval: -1 } } });
    // Every power_state the rows take, in order: CRASHED lasts only until the stop Nova's sync calls finishes,
    // which can be quicker than any poll.
    await sql.query(`create table power_state_history (id serial primary key, display_name text, power_state int, vm_state text, task_state text);
      create function keep_power_state() returns trigger language plpgsql as $$ begin
        insert into power_state_history (display_name, power_state, vm_state, task_state) values (new.display_name, new.power_state, new.vm_state, new.task_state);
        return new; end $$;
      create trigger keep_power_state after insert or update on instances for each row execute function keep_power_state()`);
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
    // Nova's power state for a panicked guest, then (as Nova's power-state sync does for an ACTIVE
    // instance found CRASHED) a `stop` by the host that leaves it SHUTOFF.
    const history = await until('power_state CRASHED (6) then SHUTDOWN (4), vm_state stopped', async () => {
      const r = await sql.query<{ power_state: number; vm_state: string; task_state: string | null }>(
        'select power_state, vm_state, task_state from power_state_history where display_name = $1 order by id',
        [PANIC],
      );
      const crashed = r.rows.findIndex((h) => h.power_state === 6);
      const last = r.rows.at(-1);
      return crashed >= 0 && last?.power_state === 4 && last.vm_state === 'stopped' && last.task_state === null ? r.rows.slice(crashed) : null;
    }, 60_000);
    expect(history.some((h) => h.task_state === 'powering-off')).toBe(true);
    // The stop's event is finished after its last instance save, as Nova's wrap_instance_event finishes it
    // when the method returns: a poll can see the row stopped a moment before the event is written.
    const stops = await until('the stop action\'s finished event', async () => {
      const r = await events(PANIC);
      return r.some((e) => e.action === 'stop') ? r : null;
    }, 10_000, 50);
    expect(stops.filter((e) => e.action === 'stop').every((e) => e.result === 'Success')).toBe(true);
  });
});
