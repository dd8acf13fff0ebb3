// CPU one /metrics scrape costs: novamon-compute with one fixture guest, and optionally another exporter
// already running (e.g. prometheus-libvirt-exporter beside a libvirt guest). Counts the serving process's
// utime+stime ticks over N sequential scrapes (the hypervisor's own work answering is not counted).
// Usage: npx tsx scripts/bench-metrics-scrape.mts N [EXPORTER_PID EXPORTER_PORT]

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startComputeService } from '../test/fixtures/compute-service.js';
import { startFixtureGuest } from '../test/fixtures/guest.js';
import { freePort } from '../test/fixtures/scratch.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const ticks = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
async function bench(label: string, url: string, pid: number, n: number) {
  for (let i = 0; i < 10; i++) await (await fetch(url)).text();
  const t0 = ticks(pid); const w0 = performance.now();
  for (let i = 0; i < n; i++) await (await fetch(url)).text();
  const dt = ticks(pid) - t0; const wall = performance.now() - w0;
  out(`${label}: ${n} scrapes, ${dt} ticks (${(dt * 10 / n).toFixed(2)} ms CPU/scrape at 100 ticks/s), wall ${(wall / n).toFixed(1)} ms/scrape`);
}
const opsPort = await freePort();
const compute = await startComputeService({ databaseUrl: '', config: { oslo_middleware: { enabled: true, port: opsPort } } });
const guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-0000014b' });
try {
  const url = `http://127.0.0.1:${opsPort}/metrics`;
  for (let i = 0; i < 120; i++) { if ((await (await fetch(url)).text()).includes('novamon_guest_vcpu_time_seconds_total{')) break; await new Promise((r) => setTimeout(r, 500)); }
  const pid = Number(/pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `sport = :${opsPort}`]).toString())![1]);
  const text = await (await fetch(url)).text();
  out('novamon guest series lines: ' + text.split('\n').filter((l) => l.startsWith('novamon_guest_')).length);
  await bench('novamon-compute /metrics (1 fixture guest)', url, pid, Number(process.argv[2] ?? 300));
  const exp = Number(process.argv[3]); const expPort = Number(process.argv[4]);
  if (exp) await bench('prometheus-libvirt-exporter /metrics (1 libvirt guest)', `http://127.0.0.1:${expPort}/metrics`, exp, Number(process.argv[2] ?? 300));
} finally { await guest.stop(); await compute.cleanup(); }
