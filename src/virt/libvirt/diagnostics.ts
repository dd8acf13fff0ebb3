// Turns libvirt's bulk domain stats (virConnectGetAllDomainStats) plus the domain XML into Nova's
// Diagnostics object and the legacy flat dict. Unknown figures are null, never a sentinel; disk error
// counts come from QEMU's query-blockstats through the passthrough, matched to disks by device alias.

import * as qmp from '../../qmp/commands.js';
import type { Diagnostics, DiskDiagnostics, LegacyDiagnostics, NicDiagnostics } from '../driver.js';
import { powerStateName } from '../power-state.js';
import type { DomainConfig } from './domain-xml.js';
import { powerStateFromLibvirt, type LibvirtGuest } from './guest.js';
import type { TypedParamValue } from './protocol.js';

type Stats = Map<string, TypedParamValue>;

function num(stats: Stats, key: string): number | null {
  const v = stats.get(key);
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number') return v;
  return null;
}

function count(stats: Stats, key: string): number {
  return num(stats, key) ?? 0;
}

interface BlockStat { target: string; readBytes: number | null; readRequests: number | null; writeBytes: number | null; writeRequests: number | null }
interface NetStat { name: string; rx: number | null; rxPackets: number | null; rxErrors: number | null; rxDrop: number | null; tx: number | null; txPackets: number | null; txErrors: number | null; txDrop: number | null }

function blocks(stats: Stats): BlockStat[] {
  const out: BlockStat[] = [];
  for (let i = 0; i < count(stats, 'block.count'); i++) {
    const target = stats.get(`block.${i}.name`);
    if (typeof target !== 'string') continue;
    out.push({
      target,
      readBytes: num(stats, `block.${i}.rd.bytes`),
      readRequests: num(stats, `block.${i}.rd.reqs`),
      writeBytes: num(stats, `block.${i}.wr.bytes`),
      writeRequests: num(stats, `block.${i}.wr.reqs`),
    });
  }
  return out;
}

function nets(stats: Stats): Map<string, NetStat> {
  const out = new Map<string, NetStat>();
  for (let i = 0; i < count(stats, 'net.count'); i++) {
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

function diskErrors(config: DomainConfig, target: string, errors: Map<string, number>): number | null {
  const alias = config.disks.find((d) => d.target === target)?.alias;
  return alias ? (errors.get(alias) ?? null) : null;
}

/** Failed I/O operations per device alias, from QEMU's query-blockstats (sum of failed_*). */
export async function blockErrorsByAlias(guest: LibvirtGuest): Promise<Map<string, number>> {
  // Through libvirt's qemu-monitor-command, with the reply checked like every other QMP reply.
  const reply = await qmp.queryBlockstats((command, args) => guest.qmp(command, args));
  const out = new Map<string, number>();
  for (const entry of reply) {
    const failed = Object.entries(entry.stats)
      .filter(([k, v]) => k.startsWith('failed_') && k.endsWith('_operations') && typeof v === 'number')
      .reduce((sum, [, v]) => sum + (v as number), 0);
    if (entry.qdev) {
      const m = /^\/machine\/peripheral\/([^/]+)/.exec(entry.qdev);
      out.set(m ? m[1]! : entry.qdev, failed);
    }
    if (entry.device) out.set(entry.device.replace(/^drive-/, ''), failed);
  }
  return out;
}

export function diagnosticsFromStats(stats: Stats, config: DomainConfig, blockErrors: Map<string, number>, uptime: number | null): Diagnostics {
  const state = powerStateName(powerStateFromLibvirt(count(stats, 'state.state'))) as Diagnostics['state'];
  const cpuDetails = Array.from({ length: count(stats, 'vcpu.current') }, (_, i) => ({
    id: i,
    time: num(stats, `vcpu.${i}.time`),
    utilisation: null,
  }));
  const diskDetails: DiskDiagnostics[] = blocks(stats).map((b) => ({
    device: b.target,
    readBytes: b.readBytes,
    readRequests: b.readRequests,
    writeBytes: b.writeBytes,
    writeRequests: b.writeRequests,
    errorsCount: diskErrors(config, b.target, blockErrors),
  }));
  const netStats = nets(stats);
  const nicDetails: NicDiagnostics[] = config.interfaces.map((iface) => {
    const s = iface.target ? netStats.get(iface.target) : undefined;
    return {
      macAddress: iface.mac,
      rxOctets: s?.rx ?? null, rxErrors: s?.rxErrors ?? null, rxDrop: s?.rxDrop ?? null, rxPackets: s?.rxPackets ?? null, rxRate: null,
      txOctets: s?.tx ?? null, txErrors: s?.txErrors ?? null, txDrop: s?.txDrop ?? null, txPackets: s?.txPackets ?? null, txRate: null,
    };
  });
  const maxKiB = num(stats, 'balloon.maximum') ?? config.memoryKiB;
  const available = num(stats, 'balloon.available');
  const unused = num(stats, 'balloon.unused');
  return {
    state,
    driver: 'libvirt',
    hypervisor: config.type,
    hypervisorOs: 'linux',
    uptime,
    configDrive: config.disks.some((d) => d.source?.endsWith('disk.config') ?? false),
    cpuDetails,
    nicDetails,
    diskDetails,
    memoryDetails: {
      maximum: maxKiB === null ? null : Math.floor(maxKiB / 1024),
      used: available !== null && unused !== null ? Math.floor((available - unused) / 1024) : null,
    },
  };
}

export function legacyDiagnosticsFromStats(stats: Stats, config: DomainConfig, blockErrors: Map<string, number>): LegacyDiagnostics {
  const out: LegacyDiagnostics = {};
  for (let i = 0; i < count(stats, 'vcpu.current'); i++) out[`cpu${i}_time`] = num(stats, `vcpu.${i}.time`);
  for (const b of blocks(stats)) {
    out[`${b.target}_read_req`] = b.readRequests;
    out[`${b.target}_read`] = b.readBytes;
    out[`${b.target}_write_req`] = b.writeRequests;
    out[`${b.target}_write`] = b.writeBytes;
    // Nova's libvirt driver reports -1 where libvirt has no error count.
    out[`${b.target}_errors`] = diskErrors(config, b.target, blockErrors) ?? -1;
  }
  for (const n of nets(stats).values()) {
    Object.assign(out, {
      [`${n.name}_rx`]: n.rx, [`${n.name}_rx_packets`]: n.rxPackets, [`${n.name}_rx_errors`]: n.rxErrors, [`${n.name}_rx_drop`]: n.rxDrop,
      [`${n.name}_tx`]: n.tx, [`${n.name}_tx_packets`]: n.txPackets, [`${n.name}_tx_errors`]: n.txErrors, [`${n.name}_tx_drop`]: n.txDrop,
    });
  }
  const memory = num(stats, 'balloon.maximum') ?? config.memoryKiB;
  if (memory !== null) out['memory'] = memory;
  for (const key of stats.keys()) {
    if (!key.startsWith('balloon.') || key === 'balloon.maximum') continue;
    const stat = key.slice('balloon.'.length);
    const v = num(stats, key);
    if (v !== null) out[`memory-${stat === 'current' ? 'actual' : stat}`] = v;
  }
  return out;
}
