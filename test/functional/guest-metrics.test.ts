// Per-guest metrics end to end: Debian's real Prometheus server scrapes novamon-compute's /metrics every
// second while a fixture QEMU guest runs, and the guest's series are read back with PromQL.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startComputeService, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';
import { freePort } from '../fixtures/scratch.js';

let compute: ComputeService;
let guest: FixtureGuest;
let prometheus: ChildProcess | undefined;
let promDir: string;
let promPort: number;
let opsPort: number;
const uuid = randomUUID();

beforeAll(async () => {
  opsPort = await freePort();
  compute = await startComputeService({ databaseUrl: '', config: { oslo_middleware: { enabled: true, port: opsPort } } });
  guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-0000014a', uuid });
  promDir = await mkdtemp(path.join(os.tmpdir(), 'novamon-prom-'));
  promPort = await freePort();
  const configFile = path.join(promDir, 'prometheus.yml');
  await writeFile(
    configFile,
    ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: novamon-compute', '    static_configs:', `      - targets: ['127.0.0.1:${opsPort}']`, ''].join('\n'),
  );
  prometheus = spawn(
    '/usr/bin/prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`],
    { stdio: 'ignore' },
  );
}, 120_000);

afterAll(async () => {
  prometheus?.kill('SIGTERM');
  await guest?.stop();
  await compute?.cleanup();
  if (promDir) await rm(promDir, { recursive: true, force: true });
});

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(promql: string): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] } };
  expect(body.status).toBe('success');
  return body.data.result;
}

/** Poll a PromQL query until it returns at least one sample (Prometheus scrapes once a second). */
async function eventually(promql: string, timeoutMs = 60_000): Promise<Sample[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await query(promql);
      if (r.length > 0) return r;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`no samples for ${promql}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

it('serves the guest vCPU time to Prometheus, labelled with its uuid and name, and it grows', async () => {
  const first = await eventually(`novamon_guest_vcpu_time_seconds_total{uuid="${uuid}", vcpu="0"} > 0`);
  expect(first).toHaveLength(1);
  expect(first[0]!.metric).toMatchObject({ uuid, name: 'instance-0000014a', vcpu: '0', job: 'novamon-compute' });
  const t0 = Number(first[0]!.value[1]);
  // The fixture guest keeps ticking: its vCPU thread burns CPU between scrapes.
  const later = await eventually(`novamon_guest_vcpu_time_seconds_total{uuid="${uuid}", vcpu="0"} > ${t0}`);
  expect(Number(later[0]!.value[1])).toBeGreaterThan(t0);
}, 90_000);

it('serves run state, block counters and monitor latency for the guest, and no scrape errors', async () => {
  const info = await eventually(`novamon_guest_info{uuid="${uuid}"}`);
  expect(info[0]!.metric['state']).toBe('running');
  expect(Number((await eventually(`novamon_guest_power_state{uuid="${uuid}"}`))[0]!.value[1])).toBe(1);
  // The fixture boots from its disk: the firmware read the boot sector through the block layer.
  const reads = await eventually(`sum(novamon_guest_block_read_bytes_total{uuid="${uuid}"})`);
  expect(Number(reads[0]!.value[1])).toBeGreaterThanOrEqual(512);
  const rtt = await eventually(`novamon_guest_monitor_roundtrip_seconds{uuid="${uuid}"}`);
  expect(Number(rtt[0]!.value[1])).toBeGreaterThan(0);
  const errors = await eventually('novamon_guest_scrape_errors_total');
  expect(Number(errors[0]!.value[1])).toBe(0);
}, 60_000);
