// Why a libvirt guest went down, end to end: novamon-compute with compute_driver = libvirt (PostgreSQL)
// watching real libvirtd domains whose boot sectors power themselves off (ACPI S5), panic (pvpanic, libvirt's
// on_crash preserve) and reset themselves. QEMU's own events reach novamon through libvirt's monitor event
// passthrough: each is an instance action with QEMU's reason; a stop of ours is not recorded as the guest's.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgDatabase, RABBIT_URL, runPython, startComputeService, type ComputeService, until as untilProbe } from '../fixtures/compute-service.js';
import { buildVariantImage } from '../fixtures/boot-variants.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';
import { ensureLibvirtd } from '../fixtures/libvirt-env.js';

interface EventRow {
  action: string;
  event: string;
  result: string;
  details: string | null;
}

describe('libvirt guests\' shutdowns, resets and panics recorded with QEMU\'s reason', () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let sql: pg.Client;
  let compute: ComputeService;
  let halt: LibvirtDomain;
  let panic: LibvirtDomain;
  let reset: LibvirtDomain;
  let ticking: LibvirtDomain;

  const events = async (uuid: string): Promise<EventRow[]> =>
    (
      await sql.query<EventRow>(
        `select a.action, e.event, e.result, e.details from instance_actions a join instance_actions_events e on e.action_id = a.id
         where a.instance_uuid = $1 and e.result is not null order by e.id`,
        [uuid],
      )
    ).rows;

  const until = <T>(what: string, probe: () => Promise<T | null>, ms = 90_000, everyMs = 250): Promise<T> =>
    untilProbe(what, probe, () => compute.logs().slice(-3000), { ms, everyMs });

  const runEvents = (uuid: string, event: string, atLeast = 1) =>
    until(`${atLeast} ${event} event(s)`, async () => {
      const r = (await events(uuid)).filter((e) => e.event === event);
      return r.length >= atLeast ? r : null;
    });

  beforeAll(async () => {
    await ensureLibvirtd();
    db = await createPgDatabase();
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
    // The ticking guest runs first, so novamon-compute finds it at start-up.
    ticking = await startLibvirtDomain({});
    await ticking.waitForConsole(FIXTURE_CONSOLE_LINE, 60_000);
    compute = await startComputeService({
      databaseUrl: db.url,
      logLevel: 'debug',
      config: { DEFAULT: { compute_driver: 'libvirt', shutdown_timeout: 30, sync_power_state_interval: -1 } },
    });
    // Defined only: the guests start once novamon-compute listens, so none of their events is missed.
    [halt, panic, reset] = await Promise.all([
      startLibvirtDomain({ image: buildVariantImage('shutdown'), start: false }),
      startLibvirtDomain({ image: buildVariantImage('panic'), panic: { onCrash: 'preserve' }, start: false }),
      startLibvirtDomain({ image: buildVariantImage('reset'), start: false }),
    ]);
    for (const d of [halt, panic, reset]) await d.virsh('start', d.name);
  }, 180_000);

  afterAll(async () => {
    await compute?.cleanup();
    await Promise.all([halt, panic, reset, ticking].map((d) => d?.remove()));
    await sql?.end();
    await db?.drop();
  });

  it('records a guest-initiated power-off once, as guest_shutdown with reason guest-shutdown, guest=true', async () => {
    const rows = await runEvents(halt.uuid, 'SHUTDOWN');
    expect(rows[0]).toEqual({ action: 'guest_shutdown', event: 'SHUTDOWN', result: 'Success', details: 'reason=guest-shutdown guest=true' });
    // libvirt then stops the process (on_poweroff destroy), and QEMU says SHUTDOWN host-signal: not the guest's doing.
    await until('the domain shut off', async () => ((await halt.virsh('domstate', halt.name)).trim() === 'shut off' ? true : null));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await events(halt.uuid)).filter((e) => e.event === 'SHUTDOWN')).toHaveLength(1);
  });

  it('records each guest-initiated reset as guest_reset with reason guest-reset, guest=true', async () => {
    const rows = await runEvents(reset.uuid, 'RESET', 2);
    for (const r of rows) expect(r).toEqual({ action: 'guest_reset', event: 'RESET', result: 'Success', details: 'reason=guest-reset guest=true' });
  });

  it('records a panic as an Error event with QEMU\'s action and a fault, and the guest becomes CRASHED', async () => {
    const rows = await runEvents(panic.uuid, 'GUEST_PANICKED');
    expect(rows[0]).toMatchObject({ action: 'guest_panicked', event: 'GUEST_PANICKED', result: 'Error', details: 'action=pause' });
    const fault = await sql.query<{ message: string }>(
      `select message from instance_faults where instance_uuid = $1 and message like 'Guest panicked%'`,
      [panic.uuid],
    );
    expect(fault.rows.map((f) => f.message)).toEqual(['Guest panicked (GUEST_PANICKED, action=pause)']);
    expect((await panic.virsh('domstate', panic.name)).trim()).toBe('crashed');
    await until('power_state CRASHED (6)', async () => {
      const r = await sql.query<{ power_state: number }>('select power_state from instances where uuid = $1', [panic.uuid]);
      return r.rows[0]?.power_state === 6 ? true : null;
    }, 30_000, 20);
  });

  it('a stop of novamon\'s own (QEMU says SHUTDOWN host-signal) stays in the stop action, not a guest_shutdown', async () => {
    const [stop] = await runPython<{ ok: boolean }[]>('nova_rpcapi.py', {
      url: RABBIT_URL,
      exchange: compute.exchange,
      host: compute.host,
      instance: { uuid: ticking.uuid, id: ticking.id, vm_state: 'active' },
      ops: [{ method: 'stop_instance', args: { do_cast: false, clean_shutdown: false } }],
    });
    expect(stop?.ok, JSON.stringify(stop)).toBe(true);
    expect((await ticking.virsh('domstate', ticking.name)).trim()).toBe('shut off');
    await new Promise((r) => setTimeout(r, 2000));
    const rows = await events(ticking.uuid);
    expect(rows.map((r) => r.action)).toContain('stop');
    expect(rows.filter((r) => r.action === 'guest_shutdown')).toEqual([]);
    // The event did arrive, and was put down to the stop.
    const seen = compute.logs().split('\n').filter((l) => l.includes('caused by a power operation in progress') && l.includes(ticking.name));
    expect(seen.some((l) => l.includes('"event":"SHUTDOWN"') && l.includes('reason=host-signal guest=false')), seen.join('\n')).toBe(true);
  });
});
