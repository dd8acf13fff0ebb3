// One guest's diagnostics figures from libvirt's cheapest exact sources, asked concurrently: vCPU times
// (virDomainGetVcpus: libvirtd reads /proc, no domain job), live state and NIC counters (bulk stats STATE and
// INTERFACE: no job), disk counters and error counts (one query-blockstats through the passthrough: the only
// question QEMU gets). The balloon's guest stats are asked at most once per stats period, since the guest
// refreshes them no more often, and the QEMU start time once per run. Concurrent requests for one guest share
// one collection.

import { MonitorCommandFailed } from '../../exception.js';
import type { Logger } from '../../logging.js';
import * as qmp from '../../qmp/commands.js';
import { QmpReplyError } from '../../qmp/errors.js';
import type { DomainConfig } from './domain-xml.js';
import type { LibvirtGuest } from './guest.js';
import { DomainState, StatsType, type TypedParamValue } from './protocol.js';

export type StatsParams = ReadonlyMap<string, TypedParamValue>;

/** One disk of the domain XML with QEMU's counters for it; null where QEMU gave none. */
export interface DiskFigures {
  target: string;
  readBytes: number | null;
  readRequests: number | null;
  writeBytes: number | null;
  writeRequests: number | null;
  /** Failed operations of every kind (QEMU's failed_*_operations). */
  errors: number | null;
}

export interface LibvirtGuestStats {
  /** virDomainState from the same moment as the counters. */
  state: number;
  config: DomainConfig;
  vcpus: { id: number; timeNs: number }[];
  disks: DiskFigures[];
  /** Bulk stats of the STATE and INTERFACE groups (net.N.*). */
  params: StatsParams;
  /** Bulk stats of the BALLOON group: balloon.current, balloon.maximum and the guest's own stats, if any. */
  balloon: StatsParams;
  /** Epoch ms when the QEMU process started; null when unknown. */
  startedAt: number | null;
}

const EMPTY: StatsParams = new Map();
/** A guest that has missed its report keeps its last stats this long before we ask again. */
const LATE_REPORT_RETRY_MS = 1000;

export function num(stats: StatsParams, key: string): number | null {
  const v = stats.get(key);
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  return null;
}

/** QEMU's counters by device alias (the XML's `<alias name>`), from query-blockstats. */
function countersByAlias(entries: readonly qmp.QmpBlockStats[]): Map<string, Omit<DiskFigures, 'target'>> {
  const out = new Map<string, Omit<DiskFigures, 'target'>>();
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  for (const entry of entries) {
    const s = entry.stats as Record<string, unknown>;
    const failed = Object.entries(s)
      .filter(([k, v]) => k.startsWith('failed_') && k.endsWith('_operations') && typeof v === 'number')
      .reduce((sum, [, v]) => sum + (v as number), 0);
    const figures = { readBytes: n(s['rd_bytes']), readRequests: n(s['rd_operations']), writeBytes: n(s['wr_bytes']), writeRequests: n(s['wr_operations']), errors: failed };
    // With -blockdev the backend has no name and qdev is /machine/peripheral/<alias>/virtio-backend or <alias>.
    const alias = entry.qdev ? (/^\/machine\/peripheral\/([^/]+)/.exec(entry.qdev)?.[1] ?? entry.qdev) : entry.device?.replace(/^drive-/, '');
    if (alias) out.set(alias, figures);
  }
  return out;
}

/** True when the kept XML no longer lists the devices the live counters come from (hot-plug sends no lifecycle event). */
function configIsStale(config: DomainConfig, counters: ReadonlyMap<string, unknown> | null, params: StatsParams): boolean {
  if ((num(params, 'net.count') ?? 0) !== config.interfaces.length) return true;
  if (counters === null) return false;
  if (counters.size !== config.disks.length) return true;
  const aliases = new Set(config.disks.map((d) => d.alias));
  return [...counters.keys()].some((a) => !aliases.has(a));
}

function disksOf(config: DomainConfig, counters: ReadonlyMap<string, Omit<DiskFigures, 'target'>> | null): DiskFigures[] {
  return config.disks.map((d) => {
    const c = d.alias ? counters?.get(d.alias) : undefined;
    return { target: d.target, readBytes: null, readRequests: null, writeBytes: null, writeRequests: null, errors: null, ...c };
  });
}

export class LibvirtStatsCollector {
  private readonly collections = new Map<string, Promise<LibvirtGuestStats>>();
  private readonly balloons = new Map<string, { value: Promise<StatsParams>; validUntil: number }>();
  private readonly starts = new Map<string, { id: number; at: Promise<number | null> }>();

  constructor(private readonly log: Logger) {}

  /**
   * The guest's figures; `freshBalloon` asks the balloon group now (the legacy dict reports the balloon's
   * current size, which moves without the guest). Concurrent callers with the same wish share one collection.
   */
  collect(guest: LibvirtGuest, freshBalloon = false): Promise<LibvirtGuestStats> {
    const key = `${guest.name}\0${freshBalloon}`;
    let running = this.collections.get(key);
    if (!running) {
      running = this.gather(guest, freshBalloon).finally(() => this.collections.delete(key));
      this.collections.set(key, running);
    }
    return running;
  }

  /** The domain started, stopped or was redefined: its QEMU process and balloon are not the ones we knew. */
  forget(name: string): void {
    this.balloons.delete(name);
    this.starts.delete(name);
  }

  private async gather(guest: LibvirtGuest, freshBalloon: boolean): Promise<LibvirtGuestStats> {
    const config = await guest.config();
    const [params, vcpus, counters, balloon, startedAt] = await Promise.all([
      guest.stats(StatsType.STATE | StatsType.INTERFACE),
      guest.vcpuTimes(Math.max(1, config.vcpus ?? 1)),
      this.blockCounters(guest),
      this.balloon(guest, config, freshBalloon),
      this.startedAt(guest),
    ]);
    const current = configIsStale(config, counters, params) ? await guest.config(true) : config;
    return {
      state: num(params, 'state.state') ?? DomainState.NOSTATE,
      config: current,
      vcpus,
      disks: disksOf(current, counters),
      params,
      balloon,
      startedAt,
    };
  }

  /** query-blockstats; null (figures unknown) when QEMU or libvirt refuses it, while timeouts and state errors propagate. */
  private async blockCounters(guest: LibvirtGuest): Promise<Map<string, Omit<DiskFigures, 'target'>> | null> {
    try {
      return countersByAlias(await qmp.queryBlockstats((command, args) => guest.qmp(command, args)));
    } catch (err) {
      if (!(err instanceof MonitorCommandFailed || err instanceof QmpReplyError)) throw err;
      this.log.warn({ err, instance: guest.instanceId }, 'query-blockstats through libvirt failed; disk figures unknown');
      return null;
    }
  }

  private balloon(guest: LibvirtGuest, config: DomainConfig, fresh: boolean): Promise<StatsParams> {
    const period = config.balloonStatsPeriod;
    if (!fresh && period <= 0) return Promise.resolve(EMPTY);
    const kept = this.balloons.get(guest.name);
    if (!fresh && kept && Date.now() < kept.validUntil) return kept.value;
    const value = guest.stats(StatsType.BALLOON).catch((err: unknown) => {
      this.log.warn({ err, instance: guest.instanceId }, 'balloon stats through libvirt failed; memory use unknown');
      return EMPTY;
    });
    const entry = { value, validUntil: Number.POSITIVE_INFINITY };
    this.balloons.set(guest.name, entry);
    void value.then((stats) => {
      const now = Date.now();
      if (stats === EMPTY || period <= 0) {
        entry.validUntil = 0;
        return;
      }
      // The guest's next report is due one period after its last (QEMU stamps last-update in host seconds).
      const last = num(stats, 'balloon.last-update') ?? 0;
      const next = last > 0 ? (last + period) * 1000 : now + period * 1000;
      entry.validUntil = Math.min(Math.max(next, now + LATE_REPORT_RETRY_MS), now + period * 1000);
    });
    return value;
  }

  private startedAt(guest: LibvirtGuest): Promise<number | null> {
    const kept = this.starts.get(guest.name);
    if (kept && kept.id === guest.handle.id) return kept.at;
    const at = guest.startedAt();
    const entry = { id: guest.handle.id, at };
    this.starts.set(guest.name, entry);
    void at.then((v) => {
      if (v === null && this.starts.get(guest.name) === entry) this.starts.delete(guest.name);
    });
    return at;
  }
}
