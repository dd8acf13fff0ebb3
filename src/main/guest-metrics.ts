// Per-guest series on novamon-compute's /metrics, collected at scrape time from the driver's guestSamples
// (qemu: the model, /proc, /sys and one query-blockstats per guest; libvirt: one bulk-stats call for all
// guests). All gauges of one scrape share one collection; a guest whose collection fails or times out is
// left out of that scrape and counted in novamon_guest_scrape_errors_total. A driver without guestSamples
// exports no guest series.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { ComputeDriver, GuestSample, GuestSamples } from '../virt/driver.js';

/** A scrape's gauges all call collect within a few milliseconds: they share a collection this recent. */
const SHARE_MS = 500;

type Setter = (g: Gauge<string>, s: GuestSample, id: Record<string, string>) => void;

interface Series {
  name: string;
  help: string;
  labels: string[];
  set: Setter;
}

function set(g: Gauge<string>, labels: Record<string, string>, v: number | null | undefined): void {
  if (typeof v === 'number' && Number.isFinite(v)) g.set(labels, v);
}

const ns = (v: number | null) => (v === null ? null : v / 1e9);

function diskSeries(name: string, help: string, pick: (d: GuestSample['disks'][number]) => number | null): Series {
  return {
    name,
    help,
    labels: ['device', 'source_file'],
    set: (g, s, id) => s.disks.forEach((d) => set(g, { ...id, device: d.device ?? '', source_file: d.file ?? '' }, pick(d))),
  };
}

type NicCounters = NonNullable<GuestSample['nics'][number]['counters']>;
function nicSeries(name: string, help: string, key: keyof NicCounters): Series {
  return {
    name,
    help,
    labels: ['interface', 'nic'],
    set: (g, s, id) => s.nics.forEach((n) => n.counters && set(g, { ...id, interface: n.hostDevice ?? '', nic: n.name }, n.counters[key])),
  };
}

const SERIES: Series[] = [
  {
    name: 'novamon_guest_info',
    help: 'Always 1 for a connected guest; state is the hypervisor run state (running, paused, shutdown, guest-panicked, ...)',
    labels: ['state'],
    set: (g, s, id) => g.set({ ...id, state: s.view.status }, 1),
  },
  { name: 'novamon_guest_power_state', help: "Nova's power_state code (1 running, 3 paused, 4 shutdown, 6 crashed, 7 suspended)", labels: [], set: (g, s, id) => g.set(id, s.view.powerState) },
  {
    name: 'novamon_guest_last_state_change_timestamp_seconds',
    help: 'When the run state last changed, with the hypervisor event and reason (SHUTDOWN guest-shutdown, ...) and whether the guest asked for it',
    labels: ['event', 'reason', 'guest_initiated'],
    set: (g, s, id) => g.set({ ...id, event: s.view.reason.event, reason: s.view.reason.reason ?? '', guest_initiated: String(s.view.reason.guest ?? '') }, s.view.reason.at / 1000),
  },
  { name: 'novamon_guest_cpu_time_seconds_total', help: 'CPU time of the whole QEMU process (vCPUs, emulator and I/O threads), seconds', labels: [], set: (g, s, id) => set(g, id, ns(s.cpuTimeNs)) },
  { name: 'novamon_guest_vcpu_time_seconds_total', help: 'CPU time of each vCPU (qemu: its thread in /proc; libvirt: vcpu.N.time), seconds', labels: ['vcpu'], set: (g, s, id) => s.cpus.forEach((c) => set(g, { ...id, vcpu: String(c.id) }, ns(c.timeNs))) },
  diskSeries('novamon_guest_block_read_bytes_total', 'Bytes read per block device', (d) => d.readBytes),
  diskSeries('novamon_guest_block_write_bytes_total', 'Bytes written per block device', (d) => d.writeBytes),
  diskSeries('novamon_guest_block_read_requests_total', 'Read requests per block device', (d) => d.readRequests),
  diskSeries('novamon_guest_block_write_requests_total', 'Write requests per block device', (d) => d.writeRequests),
  diskSeries('novamon_guest_block_flush_requests_total', 'Flush requests per block device', (d) => d.flushRequests),
  diskSeries('novamon_guest_block_read_time_seconds_total', 'Time spent on reads per block device, seconds', (d) => ns(d.readTimeNs)),
  diskSeries('novamon_guest_block_write_time_seconds_total', 'Time spent on writes per block device, seconds', (d) => ns(d.writeTimeNs)),
  diskSeries('novamon_guest_block_errors_total', 'Failed read, write and flush requests per block device (qemu driver only)', (d) => d.errorsCount),
  nicSeries('novamon_guest_interface_receive_bytes_total', 'Bytes received per NIC, host side', 'rxOctets'),
  nicSeries('novamon_guest_interface_receive_packets_total', 'Packets received per NIC, host side', 'rxPackets'),
  nicSeries('novamon_guest_interface_receive_errors_total', 'Receive errors per NIC, host side', 'rxErrors'),
  nicSeries('novamon_guest_interface_receive_drops_total', 'Receive drops per NIC, host side', 'rxDrop'),
  nicSeries('novamon_guest_interface_transmit_bytes_total', 'Bytes transmitted per NIC, host side', 'txOctets'),
  nicSeries('novamon_guest_interface_transmit_packets_total', 'Packets transmitted per NIC, host side', 'txPackets'),
  nicSeries('novamon_guest_interface_transmit_errors_total', 'Transmit errors per NIC, host side', 'txErrors'),
  nicSeries('novamon_guest_interface_transmit_drops_total', 'Transmit drops per NIC, host side', 'txDrop'),
  { name: 'novamon_guest_memory_maximum_bytes', help: 'Boot plus hot-plugged memory, bytes', labels: [], set: (g, s, id) => set(g, id, s.memory.maximumBytes) },
  { name: 'novamon_guest_memory_balloon_actual_bytes', help: 'Memory the balloon gives the guest now, bytes', labels: [], set: (g, s, id) => set(g, id, s.memory.balloonActualBytes) },
  { name: 'novamon_guest_memory_rss_bytes', help: 'Resident set size of the QEMU process, bytes', labels: [], set: (g, s, id) => set(g, id, s.memory.rssKiB === null ? null : s.memory.rssKiB * 1024) },
  {
    name: 'novamon_guest_memory_stat',
    help: "Balloon guest stats when the guest's balloon driver reports them, by libvirt name (sizes in KiB, faults and swap as counts)",
    labels: ['stat'],
    set: (g, s, id) => Object.entries(s.memory.guestStats).forEach(([stat, v]) => set(g, { ...id, stat }, v)),
  },
  { name: 'novamon_guest_monitor_roundtrip_seconds', help: "Round trip of the hypervisor call this scrape cost (qemu: the guest's query-blockstats; libvirt: the one bulk-stats call), seconds", labels: [], set: (g, s, id) => set(g, id, s.monitorSeconds) },
];

/** Instance name -> owning project id, from the instance store. */
export type ProjectsOf = () => Promise<ReadonlyMap<string, string>>;

/** How long the owners read from the instance store serve scrapes (ownership changes by adoption only). */
const OWNERS_TTL_MS = 60_000;

/**
 * The owners for a scrape: the last read while it is fresh, else a new read; a read that fails keeps
 * the last answer (the guest series are served, without a project, rather than not at all).
 */
function cachedOwners(read: ProjectsOf | undefined): () => Promise<ReadonlyMap<string, string>> {
  let owners: ReadonlyMap<string, string> = new Map();
  let readAt = -Infinity;
  let pending: Promise<void> | null = null;
  return async () => {
    if (read && performance.now() - readAt > OWNERS_TTL_MS) {
      pending ??= read()
        .then((m) => void (owners = m))
        .catch(() => undefined)
        .finally(() => {
          readAt = performance.now();
          pending = null;
        });
      await pending;
    }
    return owners;
  };
}

/**
 * Register the per-guest series on `registry`; nothing is registered when the driver cannot sample guests.
 * Every series carries `uuid`, `name` and `project` (the owner in the instance store; empty when none).
 */
export function registerGuestMetrics(registry: Registry, driver: ComputeDriver, opts: { concurrency: number; timeoutMs: number; projectsOf?: ProjectsOf }): boolean {
  if (!driver.guestSamples) return false;
  const sample = driver.guestSamples.bind(driver);
  const errors = new Counter({ name: 'novamon_guest_scrape_errors_total', help: 'Guests left out of a scrape: collection failed or outran its timeout', registers: [registry] });
  let last: { at: number; run: Promise<GuestSamples & { owners: ReadonlyMap<string, string> }> } | null = null;
  const owners = cachedOwners(opts.projectsOf);
  const shared = (): Promise<GuestSamples & { owners: ReadonlyMap<string, string> }> => {
    if (last && performance.now() - last.at < SHARE_MS) return last.run;
    const run = Promise.all([sample(opts), owners()]).then(([r, o]) => {
      if (r.failed > 0) errors.inc(r.failed);
      return { ...r, owners: o };
    });
    last = { at: performance.now(), run };
    return run;
  };
  for (const series of SERIES) {
    new Gauge({
      name: series.name,
      help: series.help,
      labelNames: ['uuid', 'name', 'project', ...series.labels],
      registers: [registry],
      async collect() {
        const { samples, owners: byName } = await shared();
        this.reset();
        for (const s of samples) series.set(this, s, { uuid: s.view.uuid ?? '', name: s.view.name, project: byName.get(s.view.name) ?? '' });
      },
    });
  }
  return true;
}
