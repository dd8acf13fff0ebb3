// Per-guest metrics of novamon-compute with compute_driver = libvirt, beside Debian's real
// prometheus-libvirt-exporter on the same libvirtd domain: Debian's Prometheus scrapes both every second,
// novamon's series for the guest are read back with PromQL, and every series the exporter offers for the
// guest is matched by novamon's counterpart (docs/metrics.md), with the same value where the value stands still.

import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';
import { ensureLibvirtd, LIBVIRT_URI } from '../fixtures/libvirt-env.js';
import { startPrometheus, type PromSample, type PrometheusServer } from '../fixtures/prometheus.js';
import { freePort } from '../fixtures/scratch.js';

/**
 * The exporter's per-guest series → novamon's counterpart, as PromQL over one guest's series (`sel` is the
 * guest's and, for devices, the device's label matchers); `same`: the two report the same figure (false for
 * figures that move between the two scrapes: CPU time, and NIC counters the host's own traffic may bump).
 */
const COUNTERPARTS: Record<string, { promql: (sel: string) => string; same: boolean }> = {
  // State code 1 (running) is novamon_guest_info's state="running" (and power_state 1).
  libvirt_domain_state_code: { promql: (sel) => `count(novamon_guest_info{${sel}, state="running"}) * count(novamon_guest_power_state{${sel}} == 1)`, same: true },
  libvirt_domain_info_cpu_time_seconds_total: { promql: (sel) => `novamon_guest_cpu_time_seconds_total{${sel}}`, same: false },
  libvirt_domain_info_maximum_memory_bytes: { promql: (sel) => `novamon_guest_memory_maximum_bytes{${sel}}`, same: true },
  libvirt_domain_info_memory_usage_bytes: { promql: (sel) => `novamon_guest_memory_balloon_actual_bytes{${sel}}`, same: true },
  libvirt_domain_info_virtual_cpus: { promql: (sel) => `count(novamon_guest_vcpu_time_seconds_total{${sel}})`, same: true },
  libvirt_domain_block_stats_read_bytes_total: { promql: (sel) => `novamon_guest_block_read_bytes_total{${sel}}`, same: true },
  libvirt_domain_block_stats_write_bytes_total: { promql: (sel) => `novamon_guest_block_write_bytes_total{${sel}}`, same: true },
  libvirt_domain_block_stats_read_requests_total: { promql: (sel) => `novamon_guest_block_read_requests_total{${sel}}`, same: true },
  libvirt_domain_block_stats_write_requests_total: { promql: (sel) => `novamon_guest_block_write_requests_total{${sel}}`, same: true },
  ...Object.fromEntries(
    ['receive', 'transmit'].flatMap((dir) => ['bytes', 'packets', 'errors', 'drops'].map((what) => [
      `libvirt_domain_interface_stats_${dir}_${what}_total`,
      { promql: (sel: string) => `novamon_guest_interface_${dir}_${what}_total{${sel}}`, same: false },
    ])),
  ),
};

/** The exporter's device labels → novamon's (target_device is a disk target or a host NIC). */
function novamonSelector(uuid: string, exporterSeries: string, labels: Record<string, string>): string {
  const sel = [`uuid="${uuid}"`, 'job="novamon-compute"'];
  if (labels['target_device']) sel.push(`${exporterSeries.includes('_block_') ? 'device' : 'interface'}="${labels['target_device']}"`);
  if (labels['source_file']) sel.push(`source_file="${labels['source_file']}"`);
  return sel.join(', ');
}

describe('per-guest metrics of libvirt guests, beside prometheus-libvirt-exporter', () => {
  let compute: ComputeService;
  let domain: LibvirtDomain;
  let exporter: ChildProcess | undefined;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    await ensureLibvirtd();
    domain = await startLibvirtDomain({ balloon: { statsPeriod: 1 }, tapNic: true });
    await domain.waitForConsole(FIXTURE_CONSOLE_LINE, 60_000);
    const [opsPort, exporterPort] = [await freePort(), await freePort()];
    compute = await startComputeService({ databaseUrl: '', config: { DEFAULT: { compute_driver: 'libvirt' }, oslo_middleware: { enabled: true, port: opsPort } } });
    exporter = spawn('/usr/bin/prometheus-libvirt-exporter', [`--web.listen-address=127.0.0.1:${exporterPort}`, `--libvirt.uri=${LIBVIRT_URI}`], { stdio: 'ignore' });
    prometheus = await startPrometheus({ 'novamon-compute': `127.0.0.1:${opsPort}`, 'libvirt-exporter': `127.0.0.1:${exporterPort}` });
  }, 180_000);

  afterAll(async () => {
    await prometheus?.stop();
    exporter?.kill('SIGTERM');
    await compute?.cleanup();
    await domain?.remove();
  });

  it('serves the libvirt guest\'s series from libvirt: vCPU and process CPU time growing, state, disk, latency, no errors', async () => {
    const sel = `uuid="${domain.uuid}"`;
    const first = await prometheus.eventually(`novamon_guest_vcpu_time_seconds_total{${sel}, vcpu="0"} > 0`);
    expect(first[0]!.metric).toMatchObject({ uuid: domain.uuid, name: domain.name, vcpu: '0', job: 'novamon-compute' });
    const t0 = Number(first[0]!.value[1]);
    await prometheus.eventually(`novamon_guest_vcpu_time_seconds_total{${sel}, vcpu="0"} > ${t0}`);
    await prometheus.eventually(`novamon_guest_cpu_time_seconds_total{${sel}} > ${t0}`);
    const info = await prometheus.eventually(`novamon_guest_info{${sel}}`);
    expect(info[0]!.metric['state']).toBe('running');
    const reads = await prometheus.eventually(`novamon_guest_block_read_bytes_total{${sel}, device="vda"}`);
    expect(Number(reads[0]!.value[1])).toBeGreaterThanOrEqual(512);
    expect(reads[0]!.metric['source_file']).toBe(`${domain.dir}/disk.img`);
    await prometheus.eventually(`novamon_guest_memory_rss_bytes{${sel}} > 0`);
    const nic = await prometheus.eventually(`novamon_guest_interface_receive_packets_total{${sel}}`);
    expect(nic).toHaveLength(1);
    expect(nic[0]!.metric['interface']).toMatch(/^vnet\d+$/);
    await prometheus.eventually(`novamon_guest_monitor_roundtrip_seconds{${sel}} > 0`);
    const errors = await prometheus.eventually('novamon_guest_scrape_errors_total{job="novamon-compute"}');
    expect(Number(errors[0]!.value[1])).toBe(0);
  }, 120_000);

  it('has a counterpart for every series the exporter offers for the guest, with the same figures', async () => {
    const theirs = await prometheus.eventually(`{__name__=~"libvirt_domain_.+", uuid="${domain.uuid}", job="libvirt-exporter"}`);
    const names = [...new Set(theirs.map((s: PromSample) => s.metric['__name__']!))].sort();
    // Some of what Debian's exporter 0.2.0 offers for this guest (the tap NIC has host-side counters; the user one none).
    expect(names).toEqual(expect.arrayContaining([
      'libvirt_domain_block_stats_read_bytes_total', 'libvirt_domain_info_cpu_time_seconds_total', 'libvirt_domain_interface_stats_receive_bytes_total',
      'libvirt_domain_state_code',
    ]));
    for (const s of theirs) {
      const name = s.metric['__name__']!;
      const counterpart = COUNTERPARTS[name];
      expect(counterpart, `no novamon counterpart for ${name}`).toBeDefined();
      const ours = await prometheus.eventually(counterpart!.promql(novamonSelector(domain.uuid, name, s.metric)));
      expect(ours, name).toHaveLength(1);
      if (counterpart!.same) expect(Number(ours[0]!.value[1]), name).toBe(Number(s.value[1]));
      else expect(Number(ours[0]!.value[1]), name).toBeGreaterThanOrEqual(0);
    }
  }, 120_000);
});
