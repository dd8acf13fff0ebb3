// The typed command functions send the names and arguments QEMU expects and hand back its reply.

import { describe, expect, it } from 'vitest';
import * as qmp from '../../../src/qmp/commands.js';
import { QmpConnection } from '../../../src/qmp/connection.js';
import { QmpMonitorRegistry } from '../../../src/qmp/monitor-registry.js';
import { FakeQmpPeer } from './fake-qmp-peer.js';

/** Replies QEMU 7.2 gives (trimmed), per command; anything else answers `{}`. */
const SAMPLES: Record<string, unknown> = {
  'query-status': { status: 'running', singlestep: false, running: true },
  'query-name': { name: 'instance-0000000b' },
  'query-uuid': { UUID: '2d4c5f0e-1111-4222-8333-944445555666' },
  'query-version': { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7' },
  'query-kvm': { enabled: false, present: true },
  'query-cpus-fast': [{ 'cpu-index': 0, 'qom-path': '/machine/unattached/device[0]', 'thread-id': 4242, target: 'x86_64' }],
  'query-blockstats': [{ device: 'drive0', qdev: '/machine/peripheral/virtio-disk0/virtio-backend', stats: { rd_bytes: 1, wr_bytes: 2, rd_operations: 3, wr_operations: 4 } }],
  'query-block': [{ device: 'drive0', removable: false, locked: false, inserted: { file: '/img', ro: false, drv: 'raw' } }],
  'query-balloon': { actual: 67108864 },
  'query-memory-size-summary': { 'base-memory': 67108864 },
  'query-vnc': { enabled: true, auth: 'none', family: 'ipv4', clients: [], service: '5919', host: '127.0.0.1' },
  'query-chardev': [{ label: 'charserial0', filename: 'ringbuf', 'frontend-open': true }],
  'query-rx-filter': [{ name: 'net0', 'main-mac': '52:54:00:12:34:56', promiscuous: false }],
  'ringbuf-read': 'hello',
  'qom-list': [{ name: 'balloon0', type: 'child<virtio-balloon-pci>' }],
  'human-monitor-command': 'net0: index=0,type=nic\r\n',
  'query-dump': { status: 'active', completed: 1048576, total: 67108864 },
};

function recorder(reply?: unknown) {
  const calls: [string, Record<string, unknown> | undefined][] = [];
  const exec: qmp.QmpExecutor = (command, args) => {
    calls.push([command, args]);
    if (command === 'qom-get' && args?.['property'] === 'guest-stats') return Promise.resolve({ stats: { 'stat-free-memory': 1 }, 'last-update': 0 });
    return Promise.resolve(reply !== undefined ? reply : command in SAMPLES ? SAMPLES[command] : {});
  };
  return { exec, calls };
}

describe('QMP command functions', () => {
  it('name each command and its arguments as QEMU spells them', async () => {
    const { exec, calls } = recorder();
    await qmp.queryStatus(exec);
    await qmp.queryName(exec);
    await qmp.queryUuid(exec);
    await qmp.queryVersion(exec);
    await qmp.queryKvm(exec);
    await qmp.queryCpusFast(exec);
    await qmp.queryBlockstats(exec);
    await qmp.queryBalloon(exec);
    await qmp.queryMemorySizeSummary(exec);
    await qmp.queryVnc(exec);
    await qmp.queryChardev(exec);
    await qmp.queryRxFilter(exec);
    await qmp.queryRxFilter(exec, 'net0');
    await qmp.ringbufRead(exec, 'charserial0', 65536);
    await qmp.ringbufRead(exec, 'charserial0', 10, 'base64');
    await qmp.queryBlock(exec);
    await qmp.qomList(exec, '/machine/peripheral');
    await qmp.qomGetBalloonGuestStats(exec, '/machine/peripheral/balloon0');
    await qmp.qomSet(exec, '/machine/peripheral/balloon0', 'guest-stats-polling-interval', 2);
    await qmp.stop(exec);
    await qmp.cont(exec);
    await qmp.systemWakeup(exec);
    await qmp.systemPowerdown(exec);
    await qmp.systemReset(exec);
    await qmp.quit(exec);
    await qmp.humanMonitorCommand(exec, 'info network');
    await qmp.dumpGuestMemory(exec, 'file:/var/lib/novamon/qemu/dumps/instance-0000000b/x.elf', { paging: false, detach: true });
    await qmp.queryDump(exec);
    expect(calls).toEqual([
      ['query-status', undefined],
      ['query-name', undefined],
      ['query-uuid', undefined],
      ['query-version', undefined],
      ['query-kvm', undefined],
      ['query-cpus-fast', undefined],
      ['query-blockstats', undefined],
      ['query-balloon', undefined],
      ['query-memory-size-summary', undefined],
      ['query-vnc', undefined],
      ['query-chardev', undefined],
      ['query-rx-filter', undefined],
      ['query-rx-filter', { name: 'net0' }],
      ['ringbuf-read', { device: 'charserial0', size: 65536, format: 'utf8' }],
      ['ringbuf-read', { device: 'charserial0', size: 10, format: 'base64' }],
      ['query-block', undefined],
      ['qom-list', { path: '/machine/peripheral' }],
      ['qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' }],
      ['qom-set', { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: 2 }],
      ['stop', undefined],
      ['cont', undefined],
      ['system_wakeup', undefined],
      ['system_powerdown', undefined],
      ['system_reset', undefined],
      ['quit', undefined],
      ['human-monitor-command', { 'command-line': 'info network' }],
      ['dump-guest-memory', { paging: false, protocol: 'file:/var/lib/novamon/qemu/dumps/instance-0000000b/x.elf', detach: true, format: 'elf' }],
      ['query-dump', undefined],
    ]);
  });

  it('hand back the reply unchanged', async () => {
    const cpus = [{ 'cpu-index': 0, 'qom-path': '/machine/unattached/device[0]', 'thread-id': 4242, target: 'x86_64', props: { 'core-id': 0 } }];
    const { exec } = recorder(cpus);
    const got = await qmp.queryCpusFast(exec);
    expect(got[0]!['thread-id']).toBe(4242);
  });

  it('refuse a reply of the wrong shape at the edge', async () => {
    await expect(qmp.queryStatus(recorder({ status: 7 }).exec)).rejects.toMatchObject({ name: 'QmpReplyError', command: 'query-status' });
    await expect(qmp.queryCpusFast(recorder([{ 'cpu-index': 0, 'qom-path': '/x', 'thread-id': -1 }]).exec)).rejects.toThrow(/thread-id/);
    await expect(qmp.queryVnc(recorder('not an object').exec)).rejects.toThrow(/unexpected reply/);
    await expect(qmp.humanMonitorCommand(recorder({}).exec, 'info vnc')).rejects.toThrow(/human-monitor-command/);
    await expect(qmp.queryBlockstats(recorder([{ device: 'd', stats: { rd_bytes: 'lots' } }]).exec)).rejects.toThrow(/rd_bytes/);
    await expect(qmp.queryDump(recorder({ status: 'finished', completed: 1, total: 1 }).exec)).rejects.toMatchObject({ name: 'QmpReplyError', command: 'query-dump' });
    await expect(qmp.queryDump(recorder({ status: 'active', completed: -1, total: 1 }).exec)).rejects.toThrow(/completed/);
    expect(await qmp.queryDump(recorder().exec)).toMatchObject({ status: 'active', completed: 1048576, total: 67108864 });
  });

  it('run over a connection and over the registry', async () => {
    const peer = await FakeQmpPeer.start({ onCommand: (cmd, c) => c.reply(cmd, { status: 'paused', running: false, singlestep: false }) });
    const registry = new QmpMonitorRegistry({ connectTimeoutMs: 1000, commandTimeoutMs: 1000 });
    try {
      const viaRegistry = await qmp.queryStatus(qmp.registryExecutor(registry, peer.path));
      expect(viaRegistry.status).toBe('paused');
      await registry.closeAll();
      const conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 1000 });
      const viaConn = await qmp.queryStatus(qmp.connectionExecutor(conn, { timeoutMs: 500 }));
      expect(viaConn.running).toBe(false);
      await conn.close();
    } finally {
      await registry.closeAll();
      await peer.stop();
    }
  });
});
