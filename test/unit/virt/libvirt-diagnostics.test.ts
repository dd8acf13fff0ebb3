// The libvirt driver's diagnostics collection: what it asks (and how often) for one guest, how concurrent
// callers share a collection, how long the balloon's guest stats are kept, and how the figures are shaped.
// The guest is an in-process stand-in that records every question; the real libvirtd path is covered by
// test/functional/libvirt-driver.test.ts.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InstanceNotRunning, MonitorCommandFailed } from '../../../src/exception.js';
import { silentLogger } from '../../../src/logging.js';
import { diagnosticsFromStats, legacyDiagnosticsFromStats } from '../../../src/virt/libvirt/diagnostics.js';
import type { DomainConfig } from '../../../src/virt/libvirt/domain-xml.js';
import { LibvirtStatsCollector } from '../../../src/virt/libvirt/guest-stats.js';
import type { LibvirtGuest } from '../../../src/virt/libvirt/guest.js';
import { DomainState, StatsType, type TypedParamValue } from '../../../src/virt/libvirt/protocol.js';

const CONFIG: DomainConfig = {
  name: 'instance-0000000a', uuid: null, type: 'kvm', memoryKiB: 65536, vcpus: 2, balloonStatsPeriod: 10,
  vnc: null, tcpSerials: [], consoleLogs: [],
  disks: [
    { target: 'vda', alias: 'virtio-disk0', source: '/i/disk', device: 'disk' },
    { target: 'vdb', alias: 'virtio-disk1', source: '/i/disk.config', device: 'disk' },
  ],
  interfaces: [{ target: 'tap1', mac: 'fa:16:3e:00:00:01' }, { target: null, mac: 'fa:16:3e:00:00:02' }],
};

const BLOCKSTATS = [
  { device: '', qdev: '/machine/peripheral/virtio-disk0/virtio-backend', stats: { rd_bytes: 4096, rd_operations: 8, wr_bytes: 512, wr_operations: 1, failed_rd_operations: 2, failed_wr_operations: 1, failed_flush_operations: 0 } },
  { device: '', qdev: '/machine/peripheral/virtio-disk1/virtio-backend', stats: { rd_bytes: 0, rd_operations: 0, wr_bytes: 0, wr_operations: 0, failed_rd_operations: 0 } },
];

/** A stand-in for LibvirtGuest that answers from fixed figures and counts each question. */
class RecordingGuest {
  readonly name = 'instance-0000000a';
  readonly instanceId = 'uuid-a';
  handle = { name: this.name, uuid: Buffer.alloc(16), id: 7 };
  readonly asked: string[] = [];
  config_ = CONFIG;
  blockstats: unknown = BLOCKSTATS;
  lastUpdate = 0;
  vcpuError: Error | null = null;
  gate: Promise<void> = Promise.resolve();

  async config(refresh = false): Promise<DomainConfig> {
    if (refresh) this.asked.push('xml');
    return this.config_;
  }
  async stats(types: number): Promise<Map<string, TypedParamValue>> {
    await this.gate;
    if (types === StatsType.BALLOON) {
      this.asked.push('balloon');
      const m = new Map<string, TypedParamValue>([['balloon.current', 65536n], ['balloon.maximum', 65536n]]);
      if (this.lastUpdate > 0) {
        m.set('balloon.available', 60000n).set('balloon.unused', 40000n).set('balloon.last-update', BigInt(this.lastUpdate));
      }
      return m;
    }
    this.asked.push(`stats:${types}`);
    return new Map<string, TypedParamValue>([
      ['state.state', DomainState.RUNNING], ['net.count', 2], ['net.0.name', 'tap1'], ['net.0.rx.bytes', 100n], ['net.0.tx.bytes', 200n],
      ['net.0.rx.pkts', 3n], ['net.0.tx.pkts', 4n], ['net.0.rx.errs', 0n], ['net.0.tx.errs', 0n], ['net.0.rx.drop', 0n], ['net.0.tx.drop', 0n],
    ]);
  }
  async vcpuTimes(max: number): Promise<{ id: number; timeNs: number }[]> {
    this.asked.push(`vcpus:${max}`);
    if (this.vcpuError) throw this.vcpuError;
    return [{ id: 0, timeNs: 1_000_000 }, { id: 1, timeNs: 2_000_000 }];
  }
  async qmp(command: string): Promise<unknown> {
    this.asked.push(`qmp:${command}`);
    if (this.blockstats instanceof Error) throw this.blockstats;
    return this.blockstats;
  }
  async startedAt(): Promise<number | null> {
    this.asked.push('start');
    return Date.now() - 90_000;
  }
}

const asGuest = (g: RecordingGuest) => g as unknown as LibvirtGuest;

describe('LibvirtStatsCollector', () => {
  let collector: LibvirtStatsCollector;
  let guest: RecordingGuest;
  beforeEach(() => {
    collector = new LibvirtStatsCollector(silentLogger());
    guest = new RecordingGuest();
  });
  afterEach(() => vi.useRealTimers());

  it('asks libvirtd for vCPU times, state and NICs, QEMU for query-blockstats only, and the start time once per run', async () => {
    const first = await collector.collect(asGuest(guest));
    expect(guest.asked.sort()).toEqual(['balloon', 'qmp:query-blockstats', 'start', `stats:${StatsType.STATE | StatsType.INTERFACE}`, 'vcpus:2']);
    guest.asked.length = 0;
    await collector.collect(asGuest(guest));
    // The balloon has not reported, so its next report is at most one period away; the process is the same.
    expect(guest.asked.sort()).toEqual(['qmp:query-blockstats', `stats:${StatsType.STATE | StatsType.INTERFACE}`, 'vcpus:2']);
    expect(first.disks).toEqual([
      { target: 'vda', readBytes: 4096, readRequests: 8, writeBytes: 512, writeRequests: 1, errors: 3 },
      { target: 'vdb', readBytes: 0, readRequests: 0, writeBytes: 0, writeRequests: 0, errors: 0 },
    ]);
    // A restart (new domain id) is a new QEMU process.
    guest.handle = { ...guest.handle, id: 8 };
    guest.asked.length = 0;
    await collector.collect(asGuest(guest));
    expect(guest.asked).toContain('start');
  });

  it('concurrent callers for one guest share one collection', async () => {
    let open!: () => void;
    guest.gate = new Promise((r) => (open = r));
    const calls = Array.from({ length: 5 }, () => collector.collect(asGuest(guest)));
    open();
    const results = await Promise.all(calls);
    expect(new Set(results).size).toBe(1);
    expect(guest.asked.filter((a) => a === 'qmp:query-blockstats')).toHaveLength(1);
    expect(guest.asked.filter((a) => a.startsWith('vcpus'))).toHaveLength(1);
    // Once it is done, the next caller gets a collection of its own.
    await collector.collect(asGuest(guest));
    expect(guest.asked.filter((a) => a === 'qmp:query-blockstats')).toHaveLength(2);
  });

  it('keeps the guest\'s balloon report until its next one is due, and asks at once for the legacy dict', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000_000_000);
    guest.lastUpdate = 1_000_000_000 - 4; // reported 4 s ago, every 10 s: next report in 6 s
    await collector.collect(asGuest(guest));
    const balloons = () => guest.asked.filter((a) => a === 'balloon').length;
    expect(balloons()).toBe(1);
    vi.setSystemTime(1_000_000_005_900);
    await collector.collect(asGuest(guest));
    expect(balloons()).toBe(1);
    vi.setSystemTime(1_000_000_006_100);
    await collector.collect(asGuest(guest));
    expect(balloons()).toBe(2);
    await collector.collect(asGuest(guest), true);
    expect(balloons()).toBe(3);
    // A lifecycle event forgets it all.
    collector.forget(guest.name);
    await collector.collect(asGuest(guest));
    expect(balloons()).toBe(4);
  });

  it('a domain without balloon stats is never asked for them', async () => {
    guest.config_ = { ...CONFIG, balloonStatsPeriod: 0 };
    const s = await collector.collect(asGuest(guest));
    expect(guest.asked).not.toContain('balloon');
    expect(diagnosticsFromStats(s).memoryDetails).toEqual({ maximum: 64, used: null });
  });

  it('re-reads the XML when the live devices disagree with it (hot-plug sends no lifecycle event)', async () => {
    guest.blockstats = [...BLOCKSTATS, { device: '', qdev: '/machine/peripheral/virtio-disk2/virtio-backend', stats: { rd_bytes: 1, rd_operations: 1, wr_bytes: 0, wr_operations: 0 } }];
    await collector.collect(asGuest(guest));
    expect(guest.asked).toContain('xml');
    guest.asked.length = 0;
    guest.blockstats = BLOCKSTATS;
    await collector.collect(asGuest(guest));
    expect(guest.asked).not.toContain('xml');
  });

  it('a refused query-blockstats leaves the disk figures unknown; a state error propagates', async () => {
    guest.blockstats = new MonitorCommandFailed('CommandNotFound', 'no');
    const s = await collector.collect(asGuest(guest));
    expect(s.disks[0]).toEqual({ target: 'vda', readBytes: null, readRequests: null, writeBytes: null, writeRequests: null, errors: null });
    expect(legacyDiagnosticsFromStats(s)['vda_errors']).toBe(-1);
    guest.blockstats = BLOCKSTATS;
    guest.vcpuError = new InstanceNotRunning('uuid-a');
    await expect(collector.collect(asGuest(guest))).rejects.toBeInstanceOf(InstanceNotRunning);
  });
});

describe('libvirt diagnostics shaping', () => {
  it('builds Nova\'s Diagnostics from one collection', async () => {
    const guest = new RecordingGuest();
    guest.lastUpdate = Math.floor(Date.now() / 1000);
    const s = await new LibvirtStatsCollector(silentLogger()).collect(asGuest(guest));
    const d = diagnosticsFromStats(s, s.startedAt! + 90_500);
    expect(d).toMatchObject({
      state: 'running', driver: 'libvirt', hypervisor: 'kvm', uptime: 90, configDrive: true,
      cpuDetails: [{ id: 0, time: 1_000_000, utilisation: null }, { id: 1, time: 2_000_000, utilisation: null }],
      memoryDetails: { maximum: 64, used: Math.floor(20000 / 1024) },
    });
    expect(d.diskDetails[0]).toEqual({ device: 'vda', readBytes: 4096, readRequests: 8, writeBytes: 512, writeRequests: 1, errorsCount: 3 });
    expect(d.nicDetails[0]).toMatchObject({ macAddress: 'fa:16:3e:00:00:01', rxOctets: 100, txOctets: 200, rxPackets: 3, txPackets: 4 });
    // A NIC without a host device (user-mode networking) has no counters: null, not zero.
    expect(d.nicDetails[1]).toMatchObject({ macAddress: 'fa:16:3e:00:00:02', rxOctets: null, txOctets: null });
  });

  it('builds the legacy dict with libvirt\'s keys', async () => {
    const guest = new RecordingGuest();
    guest.lastUpdate = 1234;
    const legacy = legacyDiagnosticsFromStats(await new LibvirtStatsCollector(silentLogger()).collect(asGuest(guest), true));
    expect(legacy).toMatchObject({
      cpu0_time: 1_000_000, cpu1_time: 2_000_000,
      vda_read: 4096, vda_read_req: 8, vda_write: 512, vda_write_req: 1, vda_errors: 3,
      tap1_rx: 100, tap1_tx: 200, tap1_rx_packets: 3,
      memory: 65536, 'memory-actual': 65536, 'memory-available': 60000, 'memory-unused': 40000, 'memory-last-update': 1234,
    });
  });
});
