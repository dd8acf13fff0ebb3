// Shapes one collection of a libvirt guest's figures (guest-stats.ts) as Nova's Diagnostics object and as
// the legacy flat dict. Unknown figures are null, never a sentinel (except where Nova's legacy dict has one).

import type { Diagnostics, DiskDiagnostics, LegacyDiagnostics, NicDiagnostics } from '../driver.js';
import { powerStateName } from '../power-state.js';
import { powerStateFromLibvirt } from './guest.js';
import { num, type LibvirtGuestStats, type StatsParams } from './guest-stats.js';

interface NetStat { name: string; rx: number | null; rxPackets: number | null; rxErrors: number | null; rxDrop: number | null; tx: number | null; txPackets: number | null; txErrors: number | null; txDrop: number | null }

/** Interface counters libvirt reports (only NICs with a host device, e.g. a tap, have any), by device name. */
function nets(stats: StatsParams): Map<string, NetStat> {
  const out = new Map<string, NetStat>();
  const n = Math.min(num(stats, 'net.count') ?? 0, 4096);
  for (let i = 0; i < n; i++) {
    const name = stats.get(`net.${i}.name`);
    if (typeof name !== 'string') continue;
    const p = `net.${i}.`;
    out.set(name, {
      name,
      rx: num(stats, `${p}rx.bytes`), rxPackets: num(stats, `${p}rx.pkts`), rxErrors: num(stats, `${p}rx.errs`), rxDrop: num(stats, `${p}rx.drop`),
      tx: num(stats, `${p}tx.bytes`), txPackets: num(stats, `${p}tx.pkts`), txErrors: num(stats, `${p}tx.errs`), txDrop: num(stats, `${p}tx.drop`),
    });
  }
  return out;
}

/** Memory the guest uses (KiB), from its own balloon report (libvirt leaves out what it never reported). */
function usedKiB(balloon: StatsParams): number | null {
  const available = num(balloon, 'balloon.available');
  const unused = num(balloon, 'balloon.unused');
  return available !== null && unused !== null ? available - unused : null;
}

export function diagnosticsFromStats(s: LibvirtGuestStats, now = Date.now()): Diagnostics {
  const { config } = s;
  const netStats = nets(s.params);
  const diskDetails: DiskDiagnostics[] = s.disks.map((d) => ({
    device: d.target,
    readBytes: d.readBytes,
    readRequests: d.readRequests,
    writeBytes: d.writeBytes,
    writeRequests: d.writeRequests,
    errorsCount: d.errors,
  }));
  const nicDetails: NicDiagnostics[] = config.interfaces.map((iface) => {
    const n = iface.target ? netStats.get(iface.target) : undefined;
    return {
      macAddress: iface.mac,
      rxOctets: n?.rx ?? null, rxErrors: n?.rxErrors ?? null, rxDrop: n?.rxDrop ?? null, rxPackets: n?.rxPackets ?? null, rxRate: null,
      txOctets: n?.tx ?? null, txErrors: n?.txErrors ?? null, txDrop: n?.txDrop ?? null, txPackets: n?.txPackets ?? null, txRate: null,
    };
  });
  const used = usedKiB(s.balloon);
  return {
    state: powerStateName(powerStateFromLibvirt(s.state)) as Diagnostics['state'],
    driver: 'libvirt',
    hypervisor: config.type,
    hypervisorOs: 'linux',
    uptime: s.startedAt === null ? null : Math.max(0, Math.floor((now - s.startedAt) / 1000)),
    configDrive: config.disks.some((d) => d.source?.endsWith('disk.config') ?? false),
    cpuDetails: s.vcpus.map((v) => ({ id: v.id, time: v.timeNs, utilisation: null })),
    nicDetails,
    diskDetails,
    memoryDetails: {
      maximum: config.memoryKiB === null ? null : Math.floor(config.memoryKiB / 1024),
      used: used === null ? null : Math.floor(used / 1024),
    },
  };
}

export function legacyDiagnosticsFromStats(s: LibvirtGuestStats): LegacyDiagnostics {
  const out: LegacyDiagnostics = {};
  for (const v of s.vcpus) out[`cpu${v.id}_time`] = v.timeNs;
  for (const d of s.disks) {
    out[`${d.target}_read_req`] = d.readRequests;
    out[`${d.target}_read`] = d.readBytes;
    out[`${d.target}_write_req`] = d.writeRequests;
    out[`${d.target}_write`] = d.writeBytes;
    // Nova's libvirt driver reports -1 where libvirt has no error count.
    out[`${d.target}_errors`] = d.errors ?? -1;
  }
  for (const n of nets(s.params).values()) {
    Object.assign(out, {
      [`${n.name}_rx`]: n.rx, [`${n.name}_rx_packets`]: n.rxPackets, [`${n.name}_rx_errors`]: n.rxErrors, [`${n.name}_rx_drop`]: n.rxDrop,
      [`${n.name}_tx`]: n.tx, [`${n.name}_tx_packets`]: n.txPackets, [`${n.name}_tx_errors`]: n.txErrors, [`${n.name}_tx_drop`]: n.txDrop,
    });
  }
  const memory = num(s.balloon, 'balloon.maximum') ?? s.config.memoryKiB;
  if (memory !== null) out['memory'] = memory;
  for (const key of s.balloon.keys()) {
    if (!key.startsWith('balloon.') || key === 'balloon.maximum') continue;
    const stat = key.slice('balloon.'.length);
    const v = num(s.balloon, key);
    if (v !== null) out[`memory-${stat === 'current' ? 'actual' : stat}`] = v;
  }
  return out;
}
