// LibvirtDriver behaviours the shared contract does not cover: libvirtd unreachable, a frozen QEMU
// monitor behind libvirt, TCP serial consoles, lookup by uuid, and discovery that ignores domains whose
// names do not follow instance_name_template. Real libvirtd and QEMU (TCG) throughout.

import { randomInt, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/loader.js';
import { HypervisorUnavailable, InstanceNotFound, MonitorTimeout } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { LibvirtConnection } from '../../src/virt/libvirt/connection.js';
import { LibvirtDriver } from '../../src/virt/libvirt/driver.js';
import { QEMU_PROGRAM, QemuProc, RemoteProc } from '../../src/virt/libvirt/protocol.js';
import { PowerState } from '../../src/virt/power-state.js';
import { startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';
import { ensureLibvirtd } from '../fixtures/libvirt-env.js';

function makeDriver(env: Record<string, string> = {}): LibvirtDriver {
  return new LibvirtDriver(loadConfig([], { NOVAMON_MONITOR__COMMAND_TIMEOUT: '2', NOVAMON_MONITOR__CONNECT_TIMEOUT: '2', ...env }), silentLogger());
}

describe('LibvirtDriver without libvirtd', () => {
  it('raises HypervisorUnavailable promptly when the socket is not there', async () => {
    const driver = makeDriver({ NOVAMON_LIBVIRT__CONNECTION_URI: `qemu+unix:///system?socket=/nonexistent/libvirt-${randomUUID()}` });
    const started = Date.now();
    await expect(driver.initHost('h')).rejects.toBeInstanceOf(HypervisorUnavailable);
    await expect(driver.getInfo({ name: 'instance-00000001' })).rejects.toBeInstanceOf(HypervisorUnavailable);
    await expect(driver.listInstances()).rejects.toThrow(/Connection to the hypervisor is broken/);
    expect(Date.now() - started).toBeLessThan(3000);
    await driver.close();
  });
});

describe('LibvirtDriver on a real domain', () => {
  let driver: LibvirtDriver;
  let dom: LibvirtDomain;
  let stray: LibvirtDomain;

  beforeAll(async () => {
    await ensureLibvirtd();
    driver = makeDriver();
    await driver.initHost('libvirt-functional');
    dom = await startLibvirtDomain({ serialTcpPort: 'auto' });
    // Defined but never started: costs no QEMU process.
    stray = await startLibvirtDomain({ name: `novamon-stray-${randomInt(1e9)}`, start: false });
  });

  afterAll(async () => {
    await driver?.close();
    await dom?.remove();
    await stray?.remove();
  });

  it('hands out the TCP serial port from the domain XML', async () => {
    expect(await driver.getSerialConsole({ name: dom.name })).toEqual({ host: '127.0.0.1', port: dom.serialTcpPort, internalAccessPath: null });
  });

  it('finds a guest by uuid when the name is not a domain name', async () => {
    const other = `instance-${randomInt(0x10000000, 0x7fffffff).toString(16)}`;
    expect((await driver.getInfo({ name: other, uuid: dom.uuid })).state).toBe(PowerState.RUNNING);
    await expect(driver.getInfo({ name: other, uuid: randomUUID() })).rejects.toBeInstanceOf(InstanceNotFound);
  });

  it('lists only domains named after instance_name_template', async () => {
    const names = (await driver.listInstances()).map((i) => i.name);
    expect(names).toContain(dom.name);
    expect(names).not.toContain(stray.name);
  });

  it('diagnostics cost three libvirt calls, one of them a QEMU command; concurrent callers share them', async () => {
    // Booted (the BIOS has read the disk); the first call learns the XML, the domain handle and the QEMU start time.
    await dom.waitForConsole();
    await driver.getInstanceDiagnostics({ name: dom.name });
    const spy = vi.spyOn(LibvirtConnection.prototype, 'call');
    try {
      const d = await driver.getInstanceDiagnostics({ name: dom.name });
      expect(d.diskDetails[0]?.readBytes).toBeGreaterThanOrEqual(512);
      expect(d.cpuDetails[0]?.time).toBeGreaterThan(0);
      const asked = spy.mock.calls.map(([prog, proc]) => (prog === QEMU_PROGRAM ? `qemu:${proc}` : `remote:${proc}`)).sort();
      expect(asked).toEqual([
        `qemu:${QemuProc.DOMAIN_MONITOR_COMMAND}`, `remote:${RemoteProc.DOMAIN_GET_VCPUS}`, `remote:${RemoteProc.CONNECT_GET_ALL_DOMAIN_STATS}`,
      ].sort());
      spy.mockClear();
      const all = await Promise.all(Array.from({ length: 8 }, () => driver.getInstanceDiagnostics({ name: dom.name })));
      expect(all.every((x) => x.state === 'running')).toBe(true);
      expect(spy.mock.calls).toHaveLength(3);
    } finally {
      spy.mockRestore();
    }
  });

  it('a frozen QEMU makes the passthrough time out within the command timeout, then recovers', async () => {
    await dom.waitForConsole();
    const pid = Number((await readFile(`/run/libvirt/qemu/${dom.name}.pid`, 'utf8')).trim());
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const err = await driver.monitorCommand({ name: dom.name }, { kind: 'qmp', execute: 'query-status' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MonitorTimeout);
      expect(Date.now() - started).toBeLessThan(2000 + 1500);
      // libvirtd keeps answering what it knows itself.
      expect((await driver.getInfo({ name: dom.name })).state).toBe(PowerState.RUNNING);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await driver.monitorCommand({ name: dom.name }, { kind: 'qmp', execute: 'query-status' }).catch(() => null);
      if (r) {
        expect(r).toMatchObject({ status: 'running' });
        break;
      }
      if (Date.now() > deadline) throw new Error('monitor did not answer again after SIGCONT');
      await new Promise((res) => setTimeout(res, 250));
    }
  });

  it('a disk hot-plugged into the running domain shows in the next diagnostics', async () => {
    await dom.waitForConsole();
    const before = await driver.getInstanceDiagnostics({ name: dom.name });
    expect(before.diskDetails).toHaveLength(1);
    const extra = path.join(dom.dir, 'extra.img');
    await writeFile(extra, Buffer.alloc(1024 * 1024));
    await dom.virsh('attach-disk', dom.name, extra, 'vdb', '--live', '--mode', 'readonly');
    const deadline = Date.now() + 10_000;
    let disks = before.diskDetails.length;
    while (disks < 2 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      disks = (await driver.getInstanceDiagnostics({ name: dom.name })).diskDetails.length;
    }
    expect(disks).toBe(2);
  });
});
