// The per-guest model against an in-process QMP peer, for orderings real QEMU produces but a test cannot
// time: an event in the same read as a reply it makes stale, and events that carry what the model needs.

import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import { QmpConnection } from '../../../src/qmp/connection.js';
import { mapMonitorError } from '../../../src/virt/qemu/errors.js';
import { GuestModel } from '../../../src/virt/qemu/model.js';
import { FakeQmpPeer, type FakeClient, type FakeCommand } from '../qmp/fake-qmp-peer.js';

const REPLIES: Record<string, unknown> = {
  'query-status': { status: 'running', running: true },
  'query-uuid': { UUID: '00000000-0000-0000-0000-000000000000' },
  'query-kvm': { enabled: false, present: true },
  'query-vnc': { enabled: true, host: '127.0.0.1', service: '5901', family: 'ipv4', auth: 'none', clients: [] },
  'query-chardev': [{ label: 'charserial0', filename: 'ringbuf' }],
  'query-block': [],
  'query-rx-filter': [{ name: 'net0', 'main-mac': '52:54:00:00:00:01' }],
  'human-monitor-command': 'net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:00:00:01\r\n \\ hostnet0: index=0,type=user\r\n',
  'query-cpus-fast': [{ 'cpu-index': 0, 'qom-path': '/machine/unattached/device[0]', 'thread-id': 100 }],
  'query-memory-size-summary': { 'base-memory': 67108864 },
};

describe('guest model', () => {
  let peer: FakeQmpPeer | undefined;
  let conn: QmpConnection | undefined;
  afterEach(async () => {
    await conn?.close();
    await peer?.stop();
  });

  async function open(onCommand: (cmd: FakeCommand, c: FakeClient) => void) {
    peer = await FakeQmpPeer.start({ onCommand });
    conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 2000 });
    const c = conn;
    // As the driver gives it: QEMU's refusals arrive mapped (MonitorCommandFailed).
    const exec = (command: string, args?: Record<string, unknown>) =>
      c.execute<unknown>(command, args, { timeoutMs: 2000 }).catch((err: unknown) => {
        throw mapMonitorError(err, { name: 'instance-00000001', socketPath: c.socketPath, host: 'h', commandTimeoutMs: 2000 });
      });
    const model = new GuestModel('instance-00000001', c, exec, silentLogger());
    conn.on('event', (e) => model.handle(e));
    return model;
  }

  const standard = (cmd: FakeCommand, c: FakeClient) => {
    if (cmd.execute in REPLIES) c.reply(cmd, REPLIES[cmd.execute]);
    else c.fail(cmd, 'CommandNotFound', `The command ${cmd.execute} has not been found`);
  };

  it('a reply made stale by an event in the same read is asked again, not taken', async () => {
    let asked = 0;
    const model = await open((cmd, c) => {
      if (cmd.execute !== 'query-status') return standard(cmd, c);
      asked++;
      if (asked === 1) {
        // QEMU answered "running", then paused: both lines arrive in one chunk.
        c.raw(`${JSON.stringify({ return: { status: 'running', running: true }, id: cmd.id })}\n${JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } })}\n`);
      } else {
        c.reply(cmd, { status: 'paused', running: false });
      }
    });
    expect(await model.refreshStatus('query-status')).toBe('paused');
    expect(model.status).toBe('paused');
    expect(asked).toBe(2);
  });

  it('VNC and balloon events update the model without a command; an rx-filter change re-reads the NICs', async () => {
    const sent: string[] = [];
    const model = await open((cmd, c) => {
      sent.push(cmd.execute);
      standard(cmd, c);
    });
    await model.load();
    expect(model.vnc).toMatchObject({ host: '127.0.0.1', service: '5901' });
    expect(model.memory.maximumBytes).toBe(67108864);
    expect(model.memory.balloonPath).toBeNull();
    expect(await model.balloonGuestStats()).toBeNull();
    const client = await peer!.client();
    const before = sent.length;
    const changes: string[] = [];
    model.on('change', (c) => changes.push(c.aspect));
    client.event('VNC_CONNECTED', { server: { host: '0.0.0.0', service: '5905', family: 'ipv4', auth: 'none', websocket: false }, client: { host: '127.0.0.1', service: '40000', family: 'ipv4', websocket: false } });
    client.event('BALLOON_CHANGE', { actual: 33554432 });
    await new Promise((r) => setTimeout(r, 50));
    expect(sent.length).toBe(before);
    expect(model.vnc).toMatchObject({ host: '0.0.0.0', service: '5905' });
    expect(model.memory.balloonActualBytes).toBe(33554432);
    client.event('NIC_RX_FILTER_CHANGED', { name: 'net0', path: '/machine/peripheral/net0/virtio-backend' });
    await new Promise((r) => setTimeout(r, 100));
    expect(sent.slice(before).sort()).toEqual(['human-monitor-command', 'query-rx-filter']);
    expect(changes).toEqual(['vnc', 'memory']);
    expect(model.nics).toEqual([{ name: 'net0', mac: '52:54:00:00:00:01', peerType: 'user', hostDevice: null }]);
  });

  it('a dropped monitor makes the guest offline and says why', async () => {
    const model = await open(standard);
    await model.load();
    model.markOffline('disconnect');
    expect(model).toMatchObject({ status: 'offline', offline: true, reason: { event: 'disconnect', reason: 'disconnect' } });
    expect(model.powerState).toBe(4);
  });
});
