// novamon-compute as a Nova controller sees it: Nova's own compute rpcapi (Zed, Python) and a plain
// oslo.messaging client call and cast over the local RabbitMQ to the service running from dist/ on a
// real QEMU guest, and the rows it leaves in PostgreSQL are read back.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgDatabase, RABBIT_URL, runPython, startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { FIXTURE_CONSOLE_LINE, FIXTURE_TICK_PREFIX, startFixtureGuest, waitForFileText, type FixtureGuest } from '../fixtures/guest.js';
import { createHash } from 'node:crypto';

interface NovaOutcome {
  ok: boolean;
  result?: unknown;
  class?: string;
  module?: string;
  is_nova_exception?: boolean;
  kwargs?: Record<string, unknown>;
  message?: string;
}
interface OsloOutcome {
  ok: boolean;
  result?: unknown;
  exc_type?: string | null;
  base_class?: string;
  base_module?: string;
  is_remote_error?: boolean;
  is_nova_exception?: boolean;
  kwargs?: Record<string, unknown>;
  message?: string;
}

const GUEST_ID = 0x2a;
const NAME = 'instance-0000002a';

describe('novamon-compute serving Nova\'s compute RPC on a real QEMU guest', () => {
  let db: Awaited<ReturnType<typeof createPgDatabase>>;
  let sql: pg.Client;
  let compute: ComputeService;
  let guest: FixtureGuest;
  const uuid = randomUUID();

  const instance = { uuid, id: GUEST_ID, vm_state: 'active', power_state: 1, project_id: 'p1', user_id: 'u1', display_name: 'web-1' };
  const nova = (ops: { method: string; args?: Record<string, unknown> }[], inst: Record<string, unknown> = instance) =>
    runPython<NovaOutcome[]>('nova_rpcapi.py', { url: RABBIT_URL, exchange: compute.exchange, host: compute.host, instance: inst, ops });
  const oslo = (ops: Record<string, unknown>[], context?: Record<string, unknown>) =>
    runPython<OsloOutcome[]>('oslo_client.py', { url: RABBIT_URL, exchange: compute.exchange, topic: 'compute', server: compute.host, context, ops });
  const row = async () => (await sql.query('select * from instances where uuid = $1', [uuid])).rows[0] as Record<string, unknown>;
  async function waitForRow(pred: (r: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await row();
      if (r && pred(r)) return r;
      if (Date.now() > deadline) throw new Error(`row never matched: ${JSON.stringify(r)}`);
      await new Promise((res) => setTimeout(res, 25));
    }
  }

  beforeAll(async () => {
    db = await createPgDatabase();
    compute = await startComputeService({
      databaseUrl: db.url,
      config: { monitor: { passthrough_allowed_commands: 'query-status,query-uuid,stop,cont,info status' } },
    }).catch(async (err: unknown) => {
      await db.drop();
      throw err;
    });
    guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: NAME, uuid, vnc: true });
    await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000);
    sql = new pg.Client({ connectionString: db.url });
    await sql.connect();
  });

  afterAll(async () => {
    await sql?.end();
    // The guest first: it was relaunched under a new pid whose pidfile lives in the compute's state dir.
    await guest?.stop();
    await compute?.cleanup();
    await db?.drop();
  });

  it('answers Nova\'s rpcapi reads: console output, Diagnostics object, legacy dict, VNC console', async () => {
    const [all, tail, diag, legacy, vnc] = await nova([
      { method: 'get_console_output', args: { tail_length: null } },
      { method: 'get_console_output', args: { tail_length: 2 } },
      { method: 'get_instance_diagnostics' },
      { method: 'get_diagnostics' },
      { method: 'get_vnc_console', args: { console_type: 'novnc' } },
    ]);
    expect(all?.ok, JSON.stringify(all)).toBe(true);
    expect(all?.result as string).toContain(FIXTURE_CONSOLE_LINE);
    // Nova's tail: the last two elements of split('\n'). The guest writes its lines a byte at a time, so the
    // second is the line under way: '' between lines, else the start of a tick line.
    const [last, current, ...more] = (tail?.result as string).split('\n');
    expect(more).toEqual([]);
    expect(last).toMatch(new RegExp(`^(${FIXTURE_CONSOLE_LINE}|${FIXTURE_TICK_PREFIX}\\d{5})\r$`));
    expect(isStartOfTickLine(current ?? '?'), JSON.stringify(current)).toBe(true);
    // Nova's deserializer accepted our Diagnostics primitive and rebuilt the object.
    expect(diag?.result).toMatchObject({ __object__: 'Diagnostics', state: 'running', driver: 'libvirt', num_cpus: 1, num_disks: 1, hypervisor_os: 'linux' });
    const d = diag?.result as { cpu_details: { time: number }[]; disk_details: { read_requests: number }[]; memory_details: { maximum: number } };
    expect(d.cpu_details[0]?.time).toBeGreaterThan(0);
    expect(d.disk_details[0]?.read_requests).toBeGreaterThan(0);
    expect(d.memory_details.maximum).toBe(64);
    expect(legacy?.result).toMatchObject({ cpu0_time: expect.any(Number), vda_read: expect.any(Number), memory: 65536 });
    const console = vnc?.result as { host: string; port: number; token: string; access_url: string };
    expect(console.access_url).toBe(`http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3D${console.token}`);
    expect(console.port).toBeGreaterThanOrEqual(5900);
    const tokens = await sql.query('select * from console_auth_tokens where instance_uuid = $1', [uuid]);
    expect(tokens.rows).toHaveLength(1);
    expect(tokens.rows[0].token_hash).toBe(createHash('sha256').update(console.token).digest('hex'));
    const [valid, invalid] = await nova([
      { method: 'validate_console_port', args: { port: console.port, console_type: 'novnc' } },
      { method: 'validate_console_port', args: { port: console.port + 1, console_type: 'novnc' } },
    ]);
    expect([valid?.result, invalid?.result]).toEqual([true, false]);
  });

  it('records pause/unpause casts from Nova\'s rpcapi: states, action and event rows', async () => {
    const [pause] = await nova([{ method: 'pause_instance' }]);
    expect(pause?.ok).toBe(true);
    await waitForRow((r) => r['vm_state'] === 'paused' && r['power_state'] === 3 && r['task_state'] === null, 10_000);
    const [unpause] = await nova([{ method: 'unpause_instance' }]);
    expect(unpause?.ok).toBe(true);
    await waitForRow((r) => r['vm_state'] === 'active' && r['power_state'] === 1, 10_000);
    const events = await sql.query(
      `select a.action, a.request_id, e.event, e.result from instance_actions a join instance_actions_events e on e.action_id = a.id
       where a.instance_uuid = $1 order by e.id`,
      [uuid],
    );
    expect(events.rows.map((r) => [r.action, r.event, r.result])).toEqual([
      ['pause', 'compute_pause_instance', 'Success'],
      ['unpause', 'compute_unpause_instance', 'Success'],
    ]);
    expect(events.rows[0].request_id).toBe((pause as { request_id?: string }).request_id);
    expect(events.rows[0].request_id).toMatch(/^req-[0-9a-f-]{36}$/);
  });

  it('stops and starts the guest; diagnostics of a stopped guest raise InstanceInvalidState in Python', async () => {
    const [stop, diag] = await nova([
      { method: 'stop_instance', args: { do_cast: false, clean_shutdown: false } },
      { method: 'get_instance_diagnostics' },
    ]);
    expect(stop?.ok, JSON.stringify(stop)).toBe(true);
    expect(await row()).toMatchObject({ vm_state: 'stopped', power_state: 4 });
    expect(diag).toMatchObject({ ok: false, class: 'InstanceInvalidState', module: 'nova.exception', is_nova_exception: true });
    expect(diag?.kwargs).toMatchObject({ attr: 'power_state', state: 'shutdown', method: 'get_diagnostics' });
    const faults = await sql.query('select code, message from instance_faults where instance_uuid = $1', [uuid]);
    expect(faults.rows.some((f) => f.code === 409)).toBe(true);

    const [start] = await nova([{ method: 'start_instance' }]);
    expect(start?.ok).toBe(true);
    await waitForRow((r) => r['vm_state'] === 'active' && r['power_state'] === 1, 60_000);
    const [console] = await nova([{ method: 'get_console_output', args: { tail_length: null } }]);
    expect(console?.result as string).toContain(FIXTURE_CONSOLE_LINE);
  });

  it('re-raises InstanceNotFound in Python for a guest that is not on this host', async () => {
    const [missing] = await nova([{ method: 'get_console_output', args: { tail_length: 5 } }], { ...instance, uuid: randomUUID(), id: 0x7fff });
    expect(missing).toMatchObject({ ok: false, class: 'InstanceNotFound', module: 'nova.exception', is_nova_exception: true });
  });

  it('answers dispatcher errors and bad arguments with failures, and keeps consuming', async () => {
    const inst = { uuid, id: GUEST_ID, host: compute.host };
    const out = await oslo([
      { kind: 'call', method: 'get_console_output', version: '7.0', args: { instance: inst, tail_length: 1 } },
      { kind: 'call', method: 'no_such_method', version: '6.0', args: { instance: inst } },
      { kind: 'call', method: 'get_console_output', version: '6.0', args: { instance: { uuid: '../../etc/passwd' }, tail_length: 1 } },
      { kind: 'call', method: 'get_console_output', version: '6.0', args: { instance: { uuid, id: -1 }, tail_length: 1 } },
      { kind: 'call', method: 'get_console_output', version: '6.0', args: { instance: inst, tail_length: { x: 1 } } },
      { kind: 'call', method: 'reboot_instance', version: '6.0', args: { instance: inst, reboot_type: 'SIDEWAYS', block_device_info: null } },
      { kind: 'call', method: 'get_console_output', version: '5.0', args: { instance: inst, tail_length: 1 } },
      { kind: 'call', method: 'stop_instance', version: '6.0', args: { instance: inst, clean_shutdown: true, force: 'yes' } },
    ]);
    expect(out[0]).toMatchObject({ ok: false, exc_type: 'UnsupportedVersion', is_remote_error: true });
    expect(out[1]).toMatchObject({ ok: false, exc_type: 'NoSuchMethod' });
    for (const bad of out.slice(2, 6)) expect(bad, JSON.stringify(bad)).toMatchObject({ ok: false, base_class: 'Invalid', base_module: 'nova.exception' });
    expect(out[6]).toMatchObject({ ok: true });
    // As Nova's dispatcher: the argument is not silently dropped, the guest is not stopped.
    expect(out[7]).toMatchObject({ ok: false, base_class: 'TypeError', base_module: 'builtins', message: "stop_instance() got an unexpected keyword argument 'force'" });
    expect(await row()).toMatchObject({ power_state: 1 });
  });

  it('applies a STOP seen on the monitor to the row within a second, and audits monitor commands', async () => {
    const inst = { uuid, id: GUEST_ID, host: compute.host };
    const t0 = Date.now();
    const [stop] = await oslo([{ kind: 'call', method: 'monitor_command', version: '6.0', args: { instance: inst, command: '{"execute":"stop"}' } }]);
    expect(stop?.ok, JSON.stringify(stop)).toBe(true);
    await waitForRow((r) => r['power_state'] === 3, 1000 + (Date.now() - t0));
    const [cont] = await oslo([{ kind: 'call', method: 'monitor_command', version: '6.0', args: { instance: inst, command: 'info status', hmp: true } }]);
    expect(cont?.result as string).toMatch(/paused/);
    await oslo([{ kind: 'call', method: 'monitor_command', version: '6.0', args: { instance: inst, command: '{"execute":"cont"}' } }]);
    await waitForRow((r) => r['power_state'] === 1, 2000);

    const member = await oslo(
      [{ kind: 'call', method: 'monitor_command', version: '6.0', args: { instance: inst, command: '{"execute":"query-status"}' } }],
      { user_id: 'u2', project_id: 'p1', is_admin: false, roles: ['member'], request_id: 'req-member' },
    );
    expect(member[0]).toMatchObject({ ok: false, base_class: 'PolicyNotAuthorized', base_module: 'nova.exception' });
    const [quit] = await oslo([{ kind: 'call', method: 'monitor_command', version: '6.0', args: { instance: inst, command: '{"execute":"quit"}' } }]);
    expect(quit).toMatchObject({ ok: false, base_class: 'Invalid' });

    const audit = await sql.query('select command, kind, allowed, result, user_id from monitor_audit where instance_uuid = $1 order by id', [uuid]);
    expect(audit.rows.map((r) => [r.command, r.result])).toEqual([
      ['stop', 'ok'],
      ['info status', 'ok'],
      ['cont', 'ok'],
      ['query-status', 'refused'],
      ['quit', 'refused'],
    ]);
    expect(audit.rows[3].user_id).toBe('u2');
  });

  it('stops cleanly on SIGTERM', async () => {
    const { code, ms } = await compute.stop();
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000);
  });
});

/** '' or the first bytes of a counter line (`novamon fixture tick 00042\r`), as the guest writes it. */
function isStartOfTickLine(s: string): boolean {
  if (FIXTURE_TICK_PREFIX.startsWith(s)) return true;
  return s.startsWith(FIXTURE_TICK_PREFIX) && /^\d{0,5}$|^\d{5}\r$/.test(s.slice(FIXTURE_TICK_PREFIX.length));
}
