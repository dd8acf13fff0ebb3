// The QMP client against a real, bare QEMU (no disk, no guest code, started paused under TCG): status,
// resume with its event, errors, HMP, the one-client-at-a-time rule, the typed queries, and quit.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as qmp from '../../src/qmp/commands.js';
import { QmpConnection, type QmpEvent } from '../../src/qmp/connection.js';
import { QmpConnectError, QmpDisconnectedError, QmpError } from '../../src/qmp/errors.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';

const QEMU = 'qemu-system-x86_64';
const hasQemu = spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status === 0;

function waitFor<T>(what: string, fn: () => T | undefined, ms: number): Promise<T> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const v = fn();
      if (v !== undefined) resolve(v);
      else if (Date.now() > until) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 20);
    };
    tick();
  });
}

it('has qemu-system-x86_64 (scripts/ensure-services.sh installs it)', () => {
  expect(hasQemu).toBe(true);
});

describe.runIf(hasQemu)('QMP against a real QEMU', () => {
  let dir: string;
  let socketPath: string;
  let qemu: ChildProcess;
  let exited: Promise<number | null>;
  let registry: QmpMonitorRegistry;
  const events: QmpEvent[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'novamon-qmp-real-'));
    socketPath = join(dir, 'x.monitor');
    qemu = spawn(
      QEMU,
      [
        '-name', `qmp-real-${process.pid}`,
        '-machine', 'q35,accel=tcg', '-m', '32', '-nodefaults', '-display', 'none', '-S',
        '-chardev', `socket,id=mon,path=${socketPath},server=on,wait=off`,
        '-mon', 'chardev=mon,mode=control',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    qemu.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => qemu.once('exit', (code) => resolve(code)));
    await waitFor('the monitor socket', () => (existsSync(socketPath) || qemu.exitCode !== null ? true : undefined), 30_000);
    if (qemu.exitCode !== null) throw new Error(`QEMU exited early (${qemu.exitCode}): ${stderr}`);
    registry = new QmpMonitorRegistry({ connectTimeoutMs: 10_000, commandTimeoutMs: 10_000 });
    registry.subscribe((path, e) => {
      if (path === socketPath) events.push(e);
    });
  });

  afterAll(async () => {
    await registry?.closeAll();
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGKILL');
      await exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('greets with the QEMU version and reports prelaunch under -S', async () => {
    const conn = await registry.get(socketPath);
    expect(conn.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    const status = await qmp.queryStatus(qmp.registryExecutor(registry, socketPath));
    expect(status).toMatchObject({ status: 'prelaunch', running: false });
  });

  it('refuses a second client: no greeting, so the connect times out', async () => {
    const err = await QmpConnection.connect(socketPath, { connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ETIMEDOUT');
    // The first connection is unaffected.
    await expect(registry.execute(socketPath, 'query-status')).resolves.toMatchObject({ status: 'prelaunch' });
  });

  it('answers the typed queries with the documented shapes', async () => {
    const exec = qmp.registryExecutor(registry, socketPath);
    const cpus = await qmp.queryCpusFast(exec);
    expect(cpus).toHaveLength(1);
    expect(cpus[0]).toMatchObject({ 'cpu-index': 0, target: 'x86_64' });
    expect(cpus[0]!['thread-id']).toBeGreaterThan(0);
    expect(cpus[0]!['qom-path']).toMatch(/^\/machine\//);
    expect(await qmp.queryName(exec)).toEqual({ name: `qmp-real-${process.pid}` });
    expect((await qmp.queryUuid(exec)).UUID).toMatch(/^[0-9a-f-]{36}$/);
    expect(await qmp.queryKvm(exec)).toMatchObject({ enabled: false });
    expect((await qmp.queryMemorySizeSummary(exec))['base-memory']).toBe(32 * 1024 * 1024);
    const chardevs = await qmp.queryChardev(exec);
    expect(chardevs.find((c) => c.label === 'mon')).toMatchObject({ 'frontend-open': true });
    expect((await qmp.queryVersion(exec)).qemu.major).toBeGreaterThanOrEqual(7);
  });

  it('cont starts the guest: RESUME event, then status running', async () => {
    const before = events.length;
    await qmp.cont(qmp.registryExecutor(registry, socketPath));
    await waitFor('RESUME', () => (events.slice(before).some((e) => e.event === 'RESUME') ? true : undefined), 5000);
    expect(await registry.execute(socketPath, 'query-status')).toMatchObject({ status: 'running', running: true });
  });

  it('reports an unknown command as QmpError CommandNotFound', async () => {
    const err = await registry.execute(socketPath, 'no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ errorClass: 'CommandNotFound', command: 'no-such-command' });
    expect(registry.has(socketPath)).toBe(true);
  });

  it('runs HMP info status', async () => {
    await expect(registry.hmp(socketPath, 'info status')).resolves.toBe('VM status: running\r\n');
  });

  it('quit: QEMU exits, SHUTDOWN is delivered, nothing pending hangs, the monitor is forgotten', async () => {
    const before = events.length;
    const exec = qmp.registryExecutor(registry, socketPath);
    // Written back to back: QEMU may or may not answer the second before it exits; either way it settles.
    const quitting = qmp.quit(exec).catch((e: unknown) => e);
    const after = registry.execute(socketPath, 'query-status').catch((e: unknown) => e);
    const quitResult = await quitting;
    if (quitResult !== undefined) expect(quitResult).toBeInstanceOf(QmpDisconnectedError);
    const afterResult = await after;
    if (afterResult instanceof Error) expect(afterResult).toBeInstanceOf(QmpDisconnectedError);

    await waitFor('the synthesised disconnect', () => (events.slice(before).some((e) => e.data?.['reason'] === 'disconnect') ? true : undefined), 5000);
    const shutdowns = events.slice(before).filter((e) => e.event === 'SHUTDOWN');
    expect(shutdowns.map((e) => e.data?.['reason'])).toContain('disconnect');
    expect(registry.has(socketPath)).toBe(false);
    expect(await exited).toBe(0);
    // Reconnecting to a dead QEMU fails fast instead of hanging.
    await expect(registry.execute(socketPath, 'query-status')).rejects.toBeInstanceOf(QmpConnectError);
  });
});
