// One domain's libvirt bulk stats (as `virsh domstats` prints them for a fixture guest) mapped to the
// GuestSample the qemu driver fills too, so /metrics serves the same series for both drivers.

import { describe, expect, it } from 'vitest';
import { PowerState } from '../../../src/virt/power-state.js';
import type { TypedParamValue } from '../../../src/virt/libvirt/protocol.js';
import { sampleFromStats } from '../../../src/virt/libvirt/samples.js';

const DOM = { name: 'instance-0000000a', uuid: Buffer.alloc(16, 1), id: 4 };
const REASON = { event: 'SHUTDOWN', reason: 'guest-reset', guest: true, at: 5 };

function stats(extra: Record<string, TypedParamValue> = {}): Map<string, TypedParamValue> {
  return new Map<string, TypedParamValue>(Object.entries({
    'state.state': 1, 'state.reason': 1,
    'cpu.time': 1_194_544_000n, 'cpu.user': 665_662_000n,
    'balloon.current': 65536n, 'balloon.maximum': 65536n, 'balloon.last-update': 0n, 'balloon.rss': 48096n,
    'vcpu.current': 1, 'vcpu.maximum': 1, 'vcpu.0.state': 1, 'vcpu.0.time': 180_000_000n,
    'net.count': 2, 'net.1.name': 'vnet3', 'net.1.rx.bytes': 10n, 'net.1.rx.pkts': 1n, 'net.1.rx.errs': 0n, 'net.1.rx.drop': 0n,
    'net.1.tx.bytes': 20n, 'net.1.tx.pkts': 2n, 'net.1.tx.errs': 0n, 'net.1.tx.drop': 1n,
    'block.count': 1, 'block.0.name': 'vda', 'block.0.path': '/images/disk.img', 'block.0.rd.reqs': 1n, 'block.0.rd.bytes': 512n,
    'block.0.rd.times': 7_362_208n, 'block.0.wr.reqs': 0n, 'block.0.wr.bytes': 0n, 'block.0.wr.times': 0n, 'block.0.fl.reqs': 3n,
    ...extra,
  }));
}

describe('libvirt bulk stats as guest samples', () => {
  it('maps state, CPU, vCPUs, block, NIC and balloon figures with their units', () => {
    const s = sampleFromStats(DOM, stats(), REASON, 0.004, 1000);
    expect(s.view).toMatchObject({ name: DOM.name, uuid: '01010101-0101-0101-0101-010101010101', powerState: PowerState.RUNNING, status: 'running', reason: REASON, connectedAt: 1000 });
    expect(s.cpuTimeNs).toBe(1_194_544_000);
    expect(s.cpus).toEqual([{ id: 0, timeNs: 180_000_000 }]);
    expect(s.disks).toEqual([{
      device: 'vda', file: '/images/disk.img', readBytes: 512, readRequests: 1, readTimeNs: 7_362_208, writeBytes: 0, writeRequests: 0,
      writeTimeNs: 0, flushRequests: 3, errorsCount: null,
    }]);
    // The user-mode NIC (net.0, no name) has no host device and no counters.
    expect(s.nics).toEqual([{
      name: 'vnet3', hostDevice: 'vnet3',
      counters: { rxOctets: 10, rxPackets: 1, rxErrors: 0, rxDrop: 0, txOctets: 20, txPackets: 2, txErrors: 0, txDrop: 1 },
    }]);
    expect(s.memory).toEqual({ maximumBytes: 64 * 1024 * 1024, balloonActualBytes: 64 * 1024 * 1024, guestStats: {}, rssKiB: 48096 });
    expect(s.monitorSeconds).toBe(0.004);
  });

  it('reports balloon guest stats under the qemu driver\'s names only once the guest has reported', () => {
    const s = sampleFromStats(DOM, stats({ 'balloon.last-update': 1_700_000_000n, 'balloon.unused': 1000n, 'balloon.swap_in': 0n, 'balloon.usable': 900n }), REASON, 0, 0);
    expect(s.memory.guestStats).toEqual({ last_update: 1_700_000_000, unused: 1000, swap_in: 0, usable: 900 });
  });

  it('a shut-off domain has its state and nothing it does not report; absurd counts are bounded', () => {
    const off = new Map<string, TypedParamValue>([['state.state', 5], ['state.reason', 1], ['balloon.maximum', 65536n], ['vcpu.current', 1e9], ['block.count', -1]]);
    const s = sampleFromStats(DOM, off, REASON, 0, 0);
    expect(s.view).toMatchObject({ powerState: PowerState.SHUTDOWN, status: 'shutoff' });
    expect(s.cpuTimeNs).toBeNull();
    expect(s.cpus.length).toBe(4096);
    expect(s.cpus[0]).toEqual({ id: 0, timeNs: null });
    expect(s.disks).toEqual([]);
    expect(s.memory.balloonActualBytes).toBeNull();
  });
});
