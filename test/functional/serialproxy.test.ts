// The serial console URL end to end: novamon-compute (with [serial_console] enabled) and
// novamon-serialproxy from dist/, sharing a PostgreSQL database, on the local RabbitMQ, with a real QEMU
// guest whose serial port is a TCP server. The URL comes from get_serial_console over RPC; a WebSocket
// client on it reads what the guest prints. QEMU serves one client per serial port, so a second session is
// refused while one is open, and a closed session frees the port for the next.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_TICK_PREFIX } from '../fixtures/boot-sector.js';
import { createPgDatabase, startComputeService, until, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';
import { openSerialSession, startSerialProxy, type SerialProxy } from '../fixtures/serial-proxy.js';

let db: Awaited<ReturnType<typeof createPgDatabase>>;
let compute: ComputeService;
let guest: FixtureGuest;
let proxy: SerialProxy;
let proxyPort: number;
let serialPort: number;

async function serialConsole(): Promise<{ access_url: string; host: string; port: number; token: string }> {
  const { stdout } = await compute.manage('rpc', 'call', 'get_serial_console', '--instance', guest.name, '--arg', 'console_type=serial');
  return JSON.parse(stdout) as { access_url: string; host: string; port: number; token: string };
}

beforeAll(async () => {
  db = await createPgDatabase();
  proxyPort = await freePort();
  compute = await startComputeService({
    databaseUrl: db.url,
    config: { serial_console: { enabled: true, base_url: `ws://127.0.0.1:${proxyPort}/`, serialproxy_port: proxyPort } },
  });
  serialPort = await freePort();
  guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-000000e1', serialTcpPort: serialPort, vnc: true });
  // The service has adopted the guest once its serial console is served.
  await until('the guest adopted by novamon-compute', async () => (await serialConsole().catch(() => null)) ?? null, compute.logs, { ms: 60_000 });
  proxy = await startSerialProxy(compute.configPath);
}, 180_000);

afterAll(async () => {
  await proxy?.stop();
  await guest?.stop();
  await compute?.cleanup();
  await db?.drop();
});

describe('novamon-serialproxy', () => {
  it('hands out a serial console URL on the proxy, and the session shows what the guest prints', async () => {
    const info = await serialConsole();
    expect(info.access_url).toBe(`ws://127.0.0.1:${proxyPort}/?token=${info.token}`);
    expect(info.port).toBe(serialPort);
    const session = await openSerialSession(info.access_url);
    expect(session.ws.protocol).toBe('binary');
    expect(await session.tick()).toMatch(new RegExp(`^${FIXTURE_TICK_PREFIX}\\d+$`));
    // The compute host confirmed the port over RPC before the proxy connected.
    await expect.poll(() => proxy.logs()).toContain('"msg":"console connected"');

    // QEMU serves one client per serial port: a second session would be connected and silent, so it is refused.
    await expect(openSerialSession((await serialConsole()).access_url)).rejects.toThrow('HTTP 409: The console is in use by another session');

    await session.close();
    // The port is free again, for the proxy and for QEMU, which accepted the next client.
    const next = await openSerialSession((await serialConsole()).access_url);
    expect(await next.tick()).toContain(FIXTURE_TICK_PREFIX);
    await next.close();
  });

  it('refuses a token it never issued, and one of another console type', async () => {
    await expect(openSerialSession(`ws://127.0.0.1:${proxyPort}/?token=${'f'.repeat(36)}`)).rejects.toThrow('HTTP 403');
    await expect.poll(() => proxy.logs()).toContain('The token has expired or is invalid');
    const { stdout } = await compute.manage('rpc', 'call', 'get_vnc_console', '--instance', guest.name, '--arg', 'console_type=novnc');
    const vnc = JSON.parse(stdout) as { token: string };
    await expect(openSerialSession(`ws://127.0.0.1:${proxyPort}/?token=${vnc.token}`)).rejects.toThrow('HTTP 403');
    await expect.poll(() => proxy.logs()).toContain('Token is for a novnc console, not serial');
  });

  it('novamon-manage console is a terminal on it, like virsh console: the guest\'s lines, one session, Ctrl-] leaves', async () => {
    const manage = path.resolve(import.meta.dirname, '../../bin/novamon-manage.js');
    const child = spawn(process.execPath, [manage, '--config-file', compute.configPath, 'console', guest.name], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await until('a tick line on novamon-manage console', async () => new RegExp(`${FIXTURE_TICK_PREFIX}\\d+`).exec(out)?.[0] ?? null, () => `${out}\n${err}`, { ms: 20_000 });
    expect(err).toContain(`Connected to ${guest.name} (escape character is ^])`);
    // The serial port has its one session: a second terminal is told so.
    const second = await compute.manage('console', guest.name).then(() => 'attached', (e: { stderr?: string }) => e.stderr ?? '');
    expect(second).toContain('HTTP 409: The console is in use by another session');
    // Typed keys the guest never reads fill its UART, and QEMU then stops reading the socket: it will not
    // see the session end by itself, so the proxy must cut the connection for the port to be free again.
    // A token serves until it expires: the URL is asked for now, so the wait below is the proxy's alone.
    const { access_url: url } = await serialConsole();
    child.stdin.write('abc');
    child.stdin.write(Buffer.from('\x1d'));
    expect(await exited).toBe(0);
    const left = Date.now();
    const next = await until('a new session on the port after Ctrl-]', () => openSerialSession(url).catch(() => null), () => proxy.logs(), { ms: 3000, everyMs: 100 });
    try {
      expect(Date.now() - left).toBeLessThan(2000);
      expect(await next.tick()).toContain(FIXTURE_TICK_PREFIX);
    } finally {
      await next.close();
    }
  });

  it('closes open sessions with 1001 on SIGTERM and exits 0', async () => {
    const session = await openSerialSession((await serialConsole()).access_url);
    await session.tick();
    const code = new Promise<number>((r) => session.ws.once('close', (c) => r(c)));
    const exited = new Promise<number | null>((r) => proxy.process.once('exit', (c) => r(c)));
    proxy.process.kill('SIGTERM');
    expect(await code).toBe(1001);
    expect(await exited).toBe(0);
  });
});
