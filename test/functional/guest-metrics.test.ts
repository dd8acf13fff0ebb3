// Per-guest metrics end to end: Debian's real Prometheus server scrapes novamon-compute's /metrics every
// second while a fixture QEMU guest runs, and the guest's series are read back with PromQL.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { startPrometheus, type PrometheusServer } from '../fixtures/prometheus.js';
import { freePort } from '../fixtures/scratch.js';

let compute: ComputeService;
let guest: FixtureGuest;
let prometheus: PrometheusServer | undefined;
const uuid = randomUUID();
let statePath: string | undefined;

beforeAll(async () => {
  const opsPort = await freePort();
  // The guest runs before the service starts: start-up discovery gives it a row owned by the default project.
  statePath = mkdtempSync(path.join(tmpdir(), 'novamon-guest-metrics-'));
  guest = await startFixtureGuest({ instancesPath: path.join(statePath, 'instances'), name: 'instance-0000014a', uuid });
  compute = await startComputeService({
    databaseUrl: '',
    statePath,
    config: { DEFAULT: { default_instance_project: 'p-metrics' }, oslo_middleware: { enabled: true, port: opsPort } },
  });
  prometheus = await startPrometheus({ 'novamon-compute': `127.0.0.1:${opsPort}` });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  await guest?.stop();
  await compute?.cleanup();
  if (statePath) rmSync(statePath, { recursive: true, force: true });
});

it('serves the guest vCPU time to Prometheus, labelled with its uuid, name and project, and it grows', async () => {
  const first = await prometheus!.eventually(`novamon_guest_vcpu_time_seconds_total{uuid="${uuid}", vcpu="0"} > 0`);
  expect(first).toHaveLength(1);
  expect(first[0]!.metric).toMatchObject({ uuid, name: 'instance-0000014a', project: 'p-metrics', vcpu: '0', job: 'novamon-compute' });
  const t0 = Number(first[0]!.value[1]);
  // The fixture guest keeps ticking: its vCPU thread burns CPU between scrapes.
  const later = await prometheus!.eventually(`novamon_guest_vcpu_time_seconds_total{uuid="${uuid}", vcpu="0"} > ${t0}`);
  expect(Number(later[0]!.value[1])).toBeGreaterThan(t0);
  // The whole QEMU process has spent at least what its vCPU thread has.
  const total = await prometheus!.eventually(`novamon_guest_cpu_time_seconds_total{uuid="${uuid}"}`);
  expect(Number(total[0]!.value[1])).toBeGreaterThanOrEqual(t0);
}, 90_000);

it('serves run state, block counters and monitor latency for the guest, and no scrape errors', async () => {
  const info = await prometheus!.eventually(`novamon_guest_info{uuid="${uuid}"}`);
  expect(info[0]!.metric['state']).toBe('running');
  expect(Number((await prometheus!.eventually(`novamon_guest_power_state{uuid="${uuid}"}`))[0]!.value[1])).toBe(1);
  // The fixture boots from its disk: the firmware read the boot sector through the block layer.
  const reads = await prometheus!.eventually(`sum(novamon_guest_block_read_bytes_total{uuid="${uuid}"})`);
  expect(Number(reads[0]!.value[1])).toBeGreaterThanOrEqual(512);
  const rtt = await prometheus!.eventually(`novamon_guest_monitor_roundtrip_seconds{uuid="${uuid}"}`);
  expect(Number(rtt[0]!.value[1])).toBeGreaterThan(0);
  const errors = await prometheus!.eventually('novamon_guest_scrape_errors_total');
  expect(Number(errors[0]!.value[1])).toBe(0);
}, 60_000);
