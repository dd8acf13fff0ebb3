// The typed command functions send the names and arguments QEMU expects and hand back its reply.

import { describe, expect, it } from 'vitest';
import * as qmp from '../../../src/qmp/commands.js';
import { QmpConnection } from '../../../src/qmp/connection.js';
import { QmpMonitorRegistry } from '../../../src/qmp/monitor-registry.js';
import { FakeQmpPeer } from './fake-qmp-peer.js';

function recorder(reply: unknown = {}) {
  const calls: [string, Record<string, unknown> | undefined][] = [];
  const exec: qmp.QmpExecutor = <T>(command: string, args?: Record<string, unknown>) => {
    calls.push([command, args]);
    return Promise.resolve(reply as T);
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
    await qmp.qomGet(exec, '/machine/peripheral/balloon0', 'guest-stats');
    await qmp.qomSet(exec, '/machine/peripheral/balloon0', 'guest-stats-polling-interval', 2);
    await qmp.stop(exec);
    await qmp.cont(exec);
    await qmp.systemPowerdown(exec);
    await qmp.systemReset(exec);
    await qmp.quit(exec);
    await qmp.humanMonitorCommand(exec, 'info network');
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
      ['qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' }],
      ['qom-set', { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: 2 }],
      ['stop', undefined],
      ['cont', undefined],
      ['system_powerdown', undefined],
      ['system_reset', undefined],
      ['quit', undefined],
      ['human-monitor-command', { 'command-line': 'info network' }],
    ]);
  });

  it('hand back the reply unchanged', async () => {
    const cpus = [{ 'cpu-index': 0, 'qom-path': '/machine/unattached/device[0]', 'thread-id': 4242, target: 'x86_64', props: { 'core-id': 0 } }];
    const { exec } = recorder(cpus);
    const got = await qmp.queryCpusFast(exec);
    expect(got[0]!['thread-id']).toBe(4242);
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
