// Per-guest samples for /metrics from libvirt itself: one virConnectGetAllDomainStats per scrape answers
// for every domain (state, CPU, balloon, vCPU, interface and block groups), mapped to the same GuestSample
// shape the qemu driver fills, so the same series come out. Nothing here asks QEMU or /proc directly.

import type { GuestSample, StateReason } from '../driver.js';
import { powerStateFromLibvirt } from './guest.js';
import { DomainState, uuidToString, type DomainHandle, type TypedParamValue } from './protocol.js';

type Stats = ReadonlyMap<string, TypedParamValue>;

/** virDomainState by name, as virsh prints it (the `state` label of novamon_guest_info). */
const STATE_NAMES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'];

/** Balloon stats libvirt reports (KiB or counts) that are the guest's own, under the names the qemu driver uses. */
const GUEST_STATS: Record<string, string> = {
  swap_in: 'swap_in', swap_out: 'swap_out', major_fault: 'major_fault', minor_fault: 'minor_fault', unused: 'unused',
  available: 'available', usable: 'usable', disk_caches: 'disk_caches', hugetlb_pgalloc: 'hugetlb_pgalloc',
  hugetlb_pgfail: 'hugetlb_pgfail', 'last-update': 'last_update',
};

/** A counter libvirt sent, as a number; null when absent or not numeric (64-bit values stay exact below 2^53). */
function num(stats: Stats, key: string): number | null {
  const v = stats.get(key);
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return null;
}

function count(stats: Stats, key: string, max: number): number {
  const n = num(stats, key) ?? 0;
  return Number.isInteger(n) && n > 0 ? Math.min(n, max) : 0;
}

const kib = (v: number | null) => (v === null ? null : v * 1024);

function disks(stats: Stats): GuestSample['disks'][number][] {
  const out: GuestSample['disks'][number][] = [];
  for (let i = 0; i < count(stats, 'block.count', 4096); i++) {
    const name = stats.get(`block.${i}.name`);
    if (typeof name !== 'string') continue;
    const p = `block.${i}.`;
    const file = stats.get(`${p}path`);
    out.push({
      device: name,
      file: typeof file === 'string' ? file : null,
      readBytes: num(stats, `${p}rd.bytes`), readRequests: num(stats, `${p}rd.reqs`), readTimeNs: num(stats, `${p}rd.times`),
      writeBytes: num(stats, `${p}wr.bytes`), writeRequests: num(stats, `${p}wr.reqs`), writeTimeNs: num(stats, `${p}wr.times`),
      flushRequests: num(stats, `${p}fl.reqs`),
      // libvirt's bulk stats carry error counts for Xen only; asking QEMU would cost a call per guest.
      errorsCount: null,
    });
  }
  return out;
}

function nics(stats: Stats): GuestSample['nics'][number][] {
  const out: GuestSample['nics'][number][] = [];
  for (let i = 0; i < count(stats, 'net.count', 4096); i++) {
    // Interfaces without a host device (user-mode networking) have no name and no counters.
    const name = stats.get(`net.${i}.name`);
    if (typeof name !== 'string') continue;
    const p = `net.${i}.`;
    out.push({
      name,
      hostDevice: name,
      counters: {
        rxOctets: num(stats, `${p}rx.bytes`), rxPackets: num(stats, `${p}rx.pkts`), rxErrors: num(stats, `${p}rx.errs`), rxDrop: num(stats, `${p}rx.drop`),
        txOctets: num(stats, `${p}tx.bytes`), txPackets: num(stats, `${p}tx.pkts`), txErrors: num(stats, `${p}tx.errs`), txDrop: num(stats, `${p}tx.drop`),
      },
    });
  }
  return out;
}

function guestStats(stats: Stats): Record<string, number> {
  const out: Record<string, number> = {};
  // As for the qemu driver: only a guest whose balloon driver has reported has guest stats.
  if (!((num(stats, 'balloon.last-update') ?? 0) > 0)) return out;
  for (const [libvirtName, name] of Object.entries(GUEST_STATS)) {
    const v = num(stats, `balloon.${libvirtName}`);
    if (v !== null) out[name] = v;
  }
  return out;
}

/** One domain's bulk stats as a GuestSample; `reason` is what the driver's events last said of it. */
export function sampleFromStats(domain: DomainHandle, stats: Stats, reason: StateReason, callSeconds: number, connectedAt: number): GuestSample {
  const state = num(stats, 'state.state') ?? DomainState.NOSTATE;
  const diskSamples = disks(stats);
  const nicSamples = nics(stats);
  return {
    view: {
      name: domain.name,
      uuid: uuidToString(domain.uuid),
      powerState: powerStateFromLibvirt(state),
      status: STATE_NAMES[state] ?? String(state),
      reason,
      vnc: null,
      serial: null,
      blockDevices: diskSamples.map((d) => ({
        device: d.device ?? '', qdev: null, nodeName: null, file: d.file ?? null, readOnly: null, removable: false, trayOpen: null, ioStatus: null,
      })),
      nics: nicSamples.map((n) => ({ name: n.name, mac: null, peerType: null, hostDevice: n.hostDevice })),
      vcpus: [],
      connectedAt,
    },
    cpuTimeNs: num(stats, 'cpu.time'),
    cpus: Array.from({ length: count(stats, 'vcpu.current', 4096) }, (_, id) => ({ id, timeNs: num(stats, `vcpu.${id}.time`) })),
    disks: diskSamples,
    nics: nicSamples,
    memory: {
      maximumBytes: kib(num(stats, 'balloon.maximum')),
      balloonActualBytes: kib(num(stats, 'balloon.current')),
      guestStats: guestStats(stats),
      rssKiB: num(stats, 'balloon.rss'),
    },
    monitorSeconds: callSeconds,
  };
}
