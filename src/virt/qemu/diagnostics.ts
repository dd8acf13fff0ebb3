// Diagnostics for a QEMU guest: gathers figures from QMP (status, vCPUs, block stats, memory, NICs) and
// from /proc (per-vCPU thread CPU time, process uptime, RSS), then shapes them as Nova's Diagnostics
// object and as the libvirt driver's legacy dict. Unknown figures are null, never invented.

import { readFile } from 'node:fs/promises';
import { MonitorCommandFailed } from '../../exception.js';
import type { Diagnostics, DiskDiagnostics, LegacyDiagnostics, NicDiagnostics } from '../driver.js';
import { powerStateFromQemuStatus, powerStateName } from '../power-state.js';
import { processUptimeSeconds, rssKiB, threadCpuNs } from './proc.js';

export type Exec = <T>(command: string, args?: Record<string, unknown>) => Promise<T>;
export type Hmp = (commandLine: string) => Promise<string>;

const MiB = 1024 * 1024;

export interface DiskStats extends DiskDiagnostics {
  /** libvirt-style target name (vda, sdb, ...) or the device id when none can be derived. */
  target: string;
}

export interface NicStats {
  /** QEMU NIC id (net0). */
  name: string;
  mac: string | null;
  /** Host network device behind the NIC (a tap), when there is one. */
  hostDevice: string | null;
  counters: Omit<NicDiagnostics, 'macAddress' | 'rxRate' | 'txRate'> | null;
}

/** Everything gathered about one guest; pure input for toDiagnostics / toLegacyDiagnostics. */
export interface GuestStats {
  status: string;
  kvm: boolean | null;
  cpus: { id: number; timeNs: number | null }[];
  disks: DiskStats[];
  nics: NicStats[];
  memory: {
    maximumBytes: number | null;
    balloonActualBytes: number | null;
    /** Balloon guest stats (only when a guest balloon driver reports them), libvirt names, KiB or counts. */
    guestStats: Record<string, number>;
    usedBytes: number | null;
    rssKiB: number | null;
  };
  uptime: number | null;
}

interface BlockStatsEntry {
  device?: string;
  qdev?: string;
  stats: Record<string, unknown>;
}

/** Optional queries: a QEMU that lacks the command or device gives null; timeouts still propagate. */
async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof MonitorCommandFailed) return null;
    throw err;
  }
}

export async function collectGuestStats(exec: Exec, hmp: Hmp, pid: number | null): Promise<GuestStats> {
  const [status, kvm, cpus, blockstats, memSummary, balloon, rxFilter, network, guestStatsReply] = await Promise.all([
    exec<{ status: string }>('query-status'),
    optional(exec<{ enabled: boolean }>('query-kvm')),
    exec<{ 'cpu-index': number; 'thread-id'?: number }[]>('query-cpus-fast'),
    exec<BlockStatsEntry[]>('query-blockstats'),
    optional(exec<{ 'base-memory': number; 'plugged-memory'?: number }>('query-memory-size-summary')),
    optional(exec<{ actual: number }>('query-balloon')),
    optional(exec<{ name: string; 'main-mac'?: string }[]>('query-rx-filter')),
    optional(hmp('info network')),
    // libvirt names its balloon device balloon0; without that device (or a guest driver) there are no stats.
    optional(exec<{ stats: Record<string, number>; 'last-update': number }>('qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' })),
  ]);

  const cpuStats = await Promise.all(
    cpus.map(async (c) => ({
      id: c['cpu-index'],
      timeNs: pid !== null && typeof c['thread-id'] === 'number' ? await threadCpuNs(pid, c['thread-id']) : null,
    })),
  );

  const guestStats = balloonGuestStats(guestStatsReply);
  const total = guestStatsReply ? validStat(guestStatsReply.stats['stat-total-memory']) : null;
  const free = guestStatsReply ? validStat(guestStatsReply.stats['stat-free-memory']) : null;

  return {
    status: status.status,
    kvm: kvm ? kvm.enabled : null,
    cpus: cpuStats.sort((a, b) => a.id - b.id),
    disks: diskStats(blockstats),
    nics: await nicStats(rxFilter ?? [], network),
    memory: {
      maximumBytes: memSummary ? memSummary['base-memory'] + (memSummary['plugged-memory'] ?? 0) : (balloon?.actual ?? null),
      balloonActualBytes: balloon?.actual ?? null,
      guestStats,
      usedBytes: total !== null && free !== null && guestStatsReply?.['last-update'] ? total - free : null,
      rssKiB: pid !== null ? await rssKiB(pid) : null,
    },
    uptime: pid !== null ? await processUptimeSeconds(pid) : null,
  };
}

/** QEMU reports 2^64-1 for a stat the guest never filled in: that is "unknown", not a number. */
function validStat(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 2 ** 63 ? v : null;
}

const guestStatNames: Record<string, [string, number]> = {
  'stat-swap-in': ['swap_in', 1],
  'stat-swap-out': ['swap_out', 1],
  'stat-major-faults': ['major_fault', 1],
  'stat-minor-faults': ['minor_fault', 1],
  'stat-free-memory': ['unused', 1024],
  'stat-total-memory': ['available', 1024],
  'stat-available-memory': ['usable', 1024],
  'stat-disk-caches': ['disk_caches', 1024],
  'stat-htlb-pgalloc': ['hugetlb_pgalloc', 1],
  'stat-htlb-pgfail': ['hugetlb_pgfail', 1],
};

function balloonGuestStats(reply: { stats: Record<string, number>; 'last-update': number } | null): Record<string, number> {
  const out: Record<string, number> = {};
  if (!reply || !reply['last-update']) return out;
  for (const [qemuName, [libvirtName, divisor]] of Object.entries(guestStatNames)) {
    const v = validStat(reply.stats[qemuName]);
    if (v !== null) out[libvirtName] = Math.floor(v / divisor);
  }
  out['last_update'] = reply['last-update'];
  return out;
}

function letters(n: number): string {
  let s = '';
  let i = n;
  do {
    s = String.fromCharCode(97 + (i % 26)) + s;
    i = Math.floor(i / 26) - 1;
  } while (i >= 0);
  return s;
}

/** libvirt's target name for a device id libvirt generated (virtio-disk0 -> vda, scsi0-0-0-1 -> sdb). */
export function diskTarget(id: string): string {
  const virtio = /^virtio-disk(\d+)$/.exec(id);
  if (virtio) return `vd${letters(Number(virtio[1]))}`;
  const scsi = /^scsi\d+-\d+-\d+-(\d+)$/.exec(id);
  if (scsi) return `sd${letters(Number(scsi[1]))}`;
  const sata = /^sata\d+-\d+-(\d+)$/.exec(id);
  if (sata) return `sd${letters(Number(sata[1]))}`;
  const ide = /^ide0-(\d+)-(\d+)$/.exec(id);
  if (ide) return `hd${letters(Number(ide[1]) * 2 + Number(ide[2]))}`;
  return id;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function diskStats(entries: readonly BlockStatsEntry[]): DiskStats[] {
  const out: DiskStats[] = [];
  for (const e of entries) {
    // qdev is "/machine/peripheral/<id>/virtio-backend" or "<id>"; the device id is what libvirt named.
    const qdevId = e.qdev ? (/\/machine\/peripheral\/([^/]+)/.exec(e.qdev)?.[1] ?? e.qdev) : '';
    const id = qdevId || e.device || '';
    if (!id) continue;
    const s = e.stats;
    const failed = [s['failed_rd_operations'], s['failed_wr_operations'], s['failed_flush_operations']].map(num);
    out.push({
      target: diskTarget(id),
      device: diskTarget(id),
      readBytes: num(s['rd_bytes']),
      readRequests: num(s['rd_operations']),
      writeBytes: num(s['wr_bytes']),
      writeRequests: num(s['wr_operations']),
      errorsCount: failed.every((f) => f === null) ? null : failed.reduce<number>((a, f) => a + (f ?? 0), 0),
    });
  }
  return out;
}

interface NetworkLine {
  name: string;
  mac: string | null;
  peerType: string | null;
  ifname: string | null;
}

/**
 * Parses HMP `info network`: a NIC line (`net0: index=0,type=nic,model=...,macaddr=...`) followed by its
 * peer (` \ hostnet0: index=0,type=user,...` or `type=tap,ifname=tap0,...`).
 */
export function parseInfoNetwork(text: string): NetworkLine[] {
  const nics: NetworkLine[] = [];
  for (const line of text.split(/\r?\n/)) {
    const nic = /^(\S+): index=\d+,type=nic,(.*)$/.exec(line);
    if (nic?.[1]) {
      nics.push({ name: nic[1], mac: /macaddr=([0-9a-fA-F:]{17})/.exec(nic[2] ?? '')?.[1]?.toLowerCase() ?? null, peerType: null, ifname: null });
      continue;
    }
    const peer = /^\s*\\ \S+: index=\d+,type=(\w+)(.*)$/.exec(line);
    const last = nics[nics.length - 1];
    if (peer && last && last.peerType === null) {
      last.peerType = peer[1] ?? null;
      last.ifname = /ifname=([^,\s]+)/.exec(peer[2] ?? '')?.[1] ?? null;
    }
  }
  return nics;
}

const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

async function readCounter(ifname: string, counter: string): Promise<number | null> {
  try {
    const v = Number((await readFile(`/sys/class/net/${ifname}/statistics/${counter}`, 'latin1')).trim());
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** Counters of a host tap device, seen from the guest: the tap's tx is the guest's rx (libvirt swaps too). */
async function tapCounters(ifname: string): Promise<NicStats['counters']> {
  if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..') return null;
  const [rxB, rxP, rxE, rxD, txB, txP, txE, txD] = await Promise.all(
    ['rx_bytes', 'rx_packets', 'rx_errors', 'rx_dropped', 'tx_bytes', 'tx_packets', 'tx_errors', 'tx_dropped'].map((c) => readCounter(ifname, c)),
  );
  if ([rxB, rxP, rxE, rxD, txB, txP, txE, txD].every((v) => v === null)) return null;
  return {
    rxOctets: txB ?? null, rxPackets: txP ?? null, rxErrors: txE ?? null, rxDrop: txD ?? null,
    txOctets: rxB ?? null, txPackets: rxP ?? null, txErrors: rxE ?? null, txDrop: rxD ?? null,
  };
}

async function nicStats(rxFilter: readonly { name: string; 'main-mac'?: string }[], infoNetwork: string | null): Promise<NicStats[]> {
  const lines = infoNetwork ? parseInfoNetwork(infoNetwork) : [];
  const byName = new Map(lines.map((l) => [l.name, l]));
  const names = [...new Set([...lines.map((l) => l.name), ...rxFilter.map((r) => r.name)])];
  return Promise.all(
    names.map(async (name) => {
      const line = byName.get(name);
      // The rx-filter MAC is what the guest programmed; `info network` shows the configured one.
      const mac = rxFilter.find((r) => r.name === name)?.['main-mac']?.toLowerCase() ?? line?.mac ?? null;
      const hostDevice = line?.peerType === 'tap' && line.ifname ? line.ifname : null;
      return { name, mac, hostDevice, counters: hostDevice ? await tapCounters(hostDevice) : null };
    }),
  );
}

export function toDiagnostics(s: GuestStats): Diagnostics {
  return {
    state: powerStateName(powerStateFromQemuStatus(s.status)) as Diagnostics['state'],
    driver: 'libvirt',
    hypervisor: s.kvm === null ? null : s.kvm ? 'kvm' : 'qemu',
    hypervisorOs: 'linux',
    uptime: s.uptime,
    configDrive: false,
    cpuDetails: s.cpus.map((c) => ({ id: c.id, time: c.timeNs, utilisation: null })),
    nicDetails: s.nics.map((n) => ({
      macAddress: n.mac,
      rxOctets: n.counters?.rxOctets ?? null,
      rxErrors: n.counters?.rxErrors ?? null,
      rxDrop: n.counters?.rxDrop ?? null,
      rxPackets: n.counters?.rxPackets ?? null,
      rxRate: null,
      txOctets: n.counters?.txOctets ?? null,
      txErrors: n.counters?.txErrors ?? null,
      txDrop: n.counters?.txDrop ?? null,
      txPackets: n.counters?.txPackets ?? null,
      txRate: null,
    })),
    diskDetails: s.disks.map(({ target: _target, ...d }) => d),
    memoryDetails: {
      maximum: s.memory.maximumBytes === null ? null : Math.floor(s.memory.maximumBytes / MiB),
      used: s.memory.usedBytes === null ? null : Math.floor(s.memory.usedBytes / MiB),
    },
  };
}

/** The libvirt driver's get_diagnostics dict: cpuN_time, <disk>_read..., <tap>_rx..., memory, memory-<stat>. */
export function toLegacyDiagnostics(s: GuestStats): LegacyDiagnostics {
  const out: LegacyDiagnostics = {};
  for (const c of s.cpus) out[`cpu${c.id}_time`] = c.timeNs;
  for (const d of s.disks) {
    out[`${d.target}_read_req`] = d.readRequests;
    out[`${d.target}_read`] = d.readBytes;
    out[`${d.target}_write_req`] = d.writeRequests;
    out[`${d.target}_write`] = d.writeBytes;
    out[`${d.target}_errors`] = d.errorsCount;
  }
  // Like libvirt, only NICs with a host device have interface stats (user-mode networking has none).
  for (const n of s.nics) {
    if (!n.hostDevice) continue;
    const c = n.counters;
    Object.assign(out, {
      [`${n.hostDevice}_rx`]: c?.rxOctets ?? null,
      [`${n.hostDevice}_rx_packets`]: c?.rxPackets ?? null,
      [`${n.hostDevice}_rx_errors`]: c?.rxErrors ?? null,
      [`${n.hostDevice}_rx_drop`]: c?.rxDrop ?? null,
      [`${n.hostDevice}_tx`]: c?.txOctets ?? null,
      [`${n.hostDevice}_tx_packets`]: c?.txPackets ?? null,
      [`${n.hostDevice}_tx_errors`]: c?.txErrors ?? null,
      [`${n.hostDevice}_tx_drop`]: c?.txDrop ?? null,
    });
  }
  out['memory'] = s.memory.maximumBytes === null ? null : Math.floor(s.memory.maximumBytes / 1024);
  if (s.memory.balloonActualBytes !== null) out['memory-actual'] = Math.floor(s.memory.balloonActualBytes / 1024);
  for (const [k, v] of Object.entries(s.memory.guestStats)) out[`memory-${k}`] = v;
  if (s.memory.rssKiB !== null) out['memory-rss'] = s.memory.rssKiB;
  return out;
}
