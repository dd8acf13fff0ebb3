// Diagnostics for a QEMU guest from the cheapest exact source: what the per-guest model already knows (run
// state, vCPU threads, NICs, memory size, balloon size), /proc for per-vCPU CPU time, uptime and RSS (as
// libvirt does), /sys for tap counters, and one query-blockstats (plus the balloon's guest stats when the
// guest reports any). Shaped as Nova's Diagnostics object and as the libvirt driver's legacy dict.

import * as qmp from '../../qmp/commands.js';
import type { Diagnostics, DiskDiagnostics, LegacyDiagnostics } from '../driver.js';
import { powerStateFromQemuStatus, powerStateName } from '../power-state.js';
import type { GuestModel } from './model.js';
import { tapCounters, type NicCounters } from './network.js';
import { procUnits, sampleProcess, type ProcessSample, type ProcUnits } from './proc.js';

export { parseInfoNetwork } from './network.js';

const MiB = 1024 * 1024;

export interface DiskStats extends DiskDiagnostics {
  /** libvirt-style target name (vda, sdb, ...) or the device id when none can be derived. */
  target: string;
  readTimeNs: number | null;
  writeTimeNs: number | null;
  flushRequests: number | null;
}

export interface NicStats {
  /** QEMU NIC id (net0). */
  name: string;
  mac: string | null;
  /** Host network device behind the NIC (a tap), when there is one. */
  hostDevice: string | null;
  counters: NicCounters | null;
}

/** Everything gathered about one guest; pure input for toDiagnostics / toLegacyDiagnostics. */
export interface GuestStats {
  status: string;
  kvm: boolean | null;
  /** CPU time of the whole QEMU process, nanoseconds. */
  cpuTimeNs: number | null;
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
  /** Round trip of query-blockstats, seconds. */
  monitorSeconds: number;
}

interface BlockStatsEntry {
  device?: string | undefined;
  qdev?: string | undefined;
  stats: Record<string, unknown>;
}

/**
 * Monitor commands one collection sends: query-blockstats, and qom-get guest-stats when the guest reports
 * any. They leave first; /proc and /sys are read while QEMU answers.
 */
export async function collectGuestStats(model: GuestModel, exec: qmp.QmpExecutor, pid: number | null): Promise<GuestStats> {
  const t0 = performance.now();
  let monitorSeconds = 0;
  const u = await procUnits();
  const monitor = Promise.all([
    qmp.queryBlockstats(exec).then((r) => {
      monitorSeconds = (performance.now() - t0) / 1000;
      return r;
    }),
    model.balloonGuestStats(),
  ]);
  const [[blockstats, guestStatsReply], host] = await Promise.all([monitor, afterCommandsLeave(() => readHostCounters(model, pid, u))]);
  const { proc, nics } = host;
  const total = guestStatsReply ? validStat(guestStatsReply.stats['stat-total-memory']) : null;
  const free = guestStatsReply ? validStat(guestStatsReply.stats['stat-free-memory']) : null;
  return {
    status: model.status,
    kvm: model.kvm,
    cpuTimeNs: proc?.cpuNs ?? null,
    cpus: model.vcpus.map((c, i) => ({ id: c.index, timeNs: proc?.threadCpuNs[i] ?? null })),
    disks: diskStats(blockstats),
    nics,
    memory: {
      maximumBytes: model.memory.maximumBytes,
      balloonActualBytes: model.memory.balloonActualBytes,
      guestStats: balloonGuestStats(guestStatsReply),
      usedBytes: total !== null && free !== null && guestStatsReply?.['last-update'] ? total - free : null,
      rssKiB: proc?.rssKiB ?? null,
    },
    uptime: proc?.uptimeSeconds ?? null,
    monitorSeconds,
  };
}

/**
 * Runs `read` once the commands issued now are on the wire. The QMP connection writes them at the end of
 * the tick (src/qmp/connection.ts), after the promise hops of the monitor registry; setImmediate runs after
 * all of those and before the event loop next waits for I/O, so the reads overlap QEMU's work.
 */
function afterCommandsLeave<T>(read: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    setImmediate(() => {
      try {
        resolve(read());
      } catch (err) {
        reject(err);
      }
    });
  });
}

function readHostCounters(model: GuestModel, pid: number | null, u: ProcUnits): { proc: ProcessSample | null; nics: NicStats[] } {
  return {
    proc: pid === null ? null : sampleProcess(pid, model.vcpus.map((c) => c.threadId), u),
    nics: model.nics.map((n) => ({ name: n.name, mac: n.mac, hostDevice: n.hostDevice, counters: n.hostDevice ? tapCounters(n.hostDevice) : null })),
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
      readTimeNs: num(s['rd_total_time_ns']),
      writeTimeNs: num(s['wr_total_time_ns']),
      flushRequests: num(s['flush_operations']),
    });
  }
  return out;
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
    diskDetails: s.disks.map(({ device, readBytes, readRequests, writeBytes, writeRequests, errorsCount }) => ({ device, readBytes, readRequests, writeBytes, writeRequests, errorsCount })),
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
