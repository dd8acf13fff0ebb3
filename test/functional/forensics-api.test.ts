// Screenshot and trigger_crash_dump end to end: a real QEMU guest that paints its screen red and
// prints a line on every NMI, novamon-compute (qemu driver) and novamon-api on RabbitMQ and PostgreSQL,
// driven by novamon-manage, plain HTTP, and Debian's unchanged `openstack` and `nova` clients.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildVariantImage, FIXTURE_NMI_LINE, PAINT_RGB } from '../fixtures/boot-variants.js';
import { FIXTURE_CONSOLE_LINE, waitForFileText } from '../fixtures/guest.js';
import { runClient, startApiStack, type ApiStack, type ClientResult } from '../fixtures/api-stack.js';
import { countColour, decodePng } from '../fixtures/png.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const NAME = `vm-${randomBytes(3).toString('hex')}`;
let stack: ApiStack;
let uuid: string;

const osc = (...args: string[]) => runClient('/usr/bin/openstack', ['--os-auth-type', 'admin_token', '--os-endpoint', stack.endpoint, '--os-token', 'admin', ...args]);
const nova = (...args: string[]) =>
  runClient('/usr/bin/nova', ['--os-auth-type', 'admin_token', '--os-endpoint', stack.endpoint, '--os-token', 'admin', ...args], { OS_PROJECT_ID: 'admin', OS_AUTH_URL: 'http://unused' });

function ok(r: ClientResult): string {
  if (r.code !== 0) throw new Error(`client failed (${r.code}):\n${r.stderr}\n${r.stdout}\n--- service logs ---\n${stack.logs().slice(-3000)}`);
  return r.stdout;
}

function nmiLines(text: string): number {
  return text.split(FIXTURE_NMI_LINE).length - 1;
}

async function waitNmis(n: number): Promise<void> {
  const file = stack.guests[0]!.consoleLogPath;
  const deadline = Date.now() + 60_000;
  while (nmiLines(await readFile(file, 'latin1')) < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} NMI lines in ${file}\n${stack.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  stack = await startApiStack({ guests: [{ displayName: NAME, projectId: 'admin', userId: 'admin', image: buildVariantImage('paint') }], auth: 'noauth2' });
  uuid = stack.instances[0]!.uuid;
  await waitForFileText(stack.guests[0]!.consoleLogPath, FIXTURE_CONSOLE_LINE, 60_000);
}, 240_000);

afterAll(async () => {
  await stack?.close();
});

describe('screenshot', () => {
  test('novamon-manage instance screenshot NAME -o FILE.png writes the red screen (RPC through novamon-compute)', async () => {
    const out = path.join(stack.workDir, 'shot.png');
    const guestName = stack.guests[0]!.name;
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/novamon-manage.js'), '--config-file', path.join(stack.workDir, 'compute.conf'), 'instance', 'screenshot', guestName, '-o', out], { timeout: 90_000 });
    expect(JSON.parse(stdout)).toMatchObject({ file: out, width: 720, height: 400 });
    const img = decodePng(await readFile(out));
    expect(img.pixel(100, 100)).toEqual([...PAINT_RGB]);
    expect(countColour(img, PAINT_RGB)).toBe(720 * 400);
    const audit = await stack.db.knex('monitor_audit').where({ instance_name: guestName, command: 'screendump' }).select('result');
    expect(audit.map((r: { result: string }) => r.result)).toContain('ok');
  });

  test('GET /v2.1/servers/{id}/novamon-screenshot answers the PNG; another project gets 404', async () => {
    const res = await fetch(`${stack.endpoint}/servers/${uuid}/novamon-screenshot`, { headers: { 'X-Auth-Token': 'admin' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    const img = decodePng(Buffer.from(await res.arrayBuffer()));
    expect(img.pixel(700, 390)).toEqual([...PAINT_RGB]);
    const other = await fetch(`${stack.endpoint}/servers/${uuid}/novamon-screenshot`, { headers: { 'X-Auth-Token': 'u9:p9' } });
    expect(other.status).toBe(404);
  });
});

describe('trigger_crash_dump', () => {
  test('openstack server dump create and nova trigger-crash-dump inject NMIs the guest sees', async () => {
    ok(await osc('--os-compute-api-version', '2.17', 'server', 'dump', 'create', NAME));
    await waitNmis(1);
    ok(await nova('trigger-crash-dump', NAME));
    await waitNmis(2);
    const api = (p: string) => fetch(`${stack.endpoint}/servers/${uuid}${p}`, { headers: { 'X-Auth-Token': 'admin', 'OpenStack-API-Version': 'compute 2.51' } }).then((r) => r.json());
    const { instanceActions } = (await api('/os-instance-actions')) as { instanceActions: { action: string; request_id: string }[] };
    const dumps = instanceActions.filter((a) => a.action === 'trigger_crash_dump');
    expect(dumps.length).toBe(2);
    for (const d of dumps) {
      const { instanceAction } = (await api(`/os-instance-actions/${d.request_id}`)) as { instanceAction: { events: { event: string; result: string }[] } };
      expect(instanceAction.events.map((e) => [e.event, e.result])).toEqual([['compute_trigger_crash_dump', 'Success']]);
    }
  }, 180_000);

  test('a stopped server is refused with Nova\'s 409', async () => {
    ok(await osc('server', 'stop', NAME));
    const deadline = Date.now() + 90_000;
    for (;;) {
      const s = ((await (await fetch(`${stack.endpoint}/servers/${uuid}`, { headers: { 'X-Auth-Token': 'admin' } })).json()) as { server: Record<string, unknown> }).server;
      if (s['status'] === 'SHUTOFF' && s['OS-EXT-STS:task_state'] === null) break;
      if (Date.now() > deadline) throw new Error(`server did not stop\n${stack.logs().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const refused = await nova('trigger-crash-dump', NAME);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`Cannot 'trigger_crash_dump' instance ${uuid} while it is in vm_state stopped (HTTP 409)`);
  }, 180_000);
});
