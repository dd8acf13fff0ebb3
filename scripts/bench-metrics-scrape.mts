// CPU one /metrics scrape costs. Default: novamon-compute (qemu driver) with one fixture guest, and optionally
// another exporter already running. --libvirt: one libvirt domain, novamon-compute with compute_driver =
// libvirt and Debian's prometheus-libvirt-exporter on that same domain, each scraped in turn; libvirtd's own
// ticks are counted too (both ask it; it is shared, so other work on the machine lands there as well).
// Counts utime+stime ticks over N sequential scrapes (QEMU's own work answering is not counted).
// Usage: npx tsx scripts/bench-metrics-scrape.mts N [EXPORTER_PID EXPORTER_PORT]
//        npx tsx scripts/bench-metrics-scrape.mts N --libvirt

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startComputeService } from '../test/fixtures/compute-service.js';
import { startFixtureGuest } from '../test/fixtures/guest.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain } from '../test/fixtures/libvirt-domain.js';
import { freePort } from '../test/fixtures/scratch.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const ticks = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
const libvirtdPid = () => Number(execFileSync('pgrep', ['-x', 'libvirtd']).toString().split('\n')[0]);
const listenerPid = (port: number) => Number(/pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `sport = :${port}`]).toString())![1]);
const n = Number(process.argv[2] ?? 300);

async function bench(label: string, url: string, pid: number, alsoPid?: number) {
  for (let i = 0; i < 10; i++) await (await fetch(url)).text();
  const t0 = ticks(pid); const a0 = alsoPid ? ticks(alsoPid) : 0; const w0 = performance.now();
  for (let i = 0; i < n; i++) await (await fetch(url)).text();
  const dt = ticks(pid) - t0; const da = alsoPid ? ticks(alsoPid) - a0 : 0; const wall = performance.now() - w0;
  const extra = alsoPid ? `; libvirtd ${da} ticks (${(da * 10 / n).toFixed(2)} ms/scrape)` : '';
  out(`${label}: ${n} scrapes, ${dt} ticks (${(dt * 10 / n).toFixed(2)} ms CPU/scrape at 100 ticks/s)${extra}, wall ${(wall / n).toFixed(1)} ms/scrape`);
}

async function until(url: string, text: string) {
  for (let i = 0; i < 120; i++) {
    const body = await fetch(url).then((r) => r.text()).catch(() => '');
    if (body.includes(text)) return body;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${url} never served ${text}`);
}

async function qemuMode() {
  const opsPort = await freePort();
  const compute = await startComputeService({ databaseUrl: '', config: { oslo_middleware: { enabled: true, port: opsPort } } });
  const guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-0000014b' });
  try {
    const url = `http://127.0.0.1:${opsPort}/metrics`;
    const text = await until(url, 'novamon_guest_vcpu_time_seconds_total{');
    out('novamon guest series lines: ' + text.split('\n').filter((l) => l.startsWith('novamon_guest_')).length);
    await bench('novamon-compute /metrics (1 fixture guest)', url, listenerPid(opsPort));
    const exp = Number(process.argv[3]); const expPort = Number(process.argv[4]);
    if (exp) await bench('prometheus-libvirt-exporter /metrics (1 libvirt guest)', `http://127.0.0.1:${expPort}/metrics`, exp);
  } finally { await guest.stop(); await compute.cleanup(); }
}

async function libvirtMode() {
  const domain = await startLibvirtDomain({ balloon: { statsPeriod: 10 }, tapNic: true });
  const [opsPort, expPort] = [await freePort(), await freePort()];
  const compute = await startComputeService({ databaseUrl: '', config: { DEFAULT: { compute_driver: 'libvirt' }, oslo_middleware: { enabled: true, port: opsPort } } });
  const exporter = spawn('/usr/bin/prometheus-libvirt-exporter', [`--web.listen-address=127.0.0.1:${expPort}`], { stdio: 'ignore' });
  try {
    await domain.waitForConsole(FIXTURE_CONSOLE_LINE, 60_000);
    const ours = `http://127.0.0.1:${opsPort}/metrics`; const theirs = `http://127.0.0.1:${expPort}/metrics`;
    const count = (body: string, prefix: string) => body.split('\n').filter((l) => l.startsWith(prefix) && l.includes(domain.uuid)).length;
    out(`guest ${domain.name}: novamon per-guest lines ${count(await until(ours, `cpu_time_seconds_total{uuid="${domain.uuid}"`), 'novamon_guest_')}, `
      + `exporter per-guest lines ${count(await until(theirs, domain.uuid), 'libvirt_domain_')}`);
    const listed = (flag: string) => execFileSync('virsh', ['-q', '-c', 'qemu:///system', 'list', flag, '--name']).toString().split('\n').filter(Boolean).length;
    out(`domains on libvirtd: ${listed('--all')} (${listed('--state-running')} running); both exporters read them all`);
    await bench('novamon-compute /metrics, libvirt driver (1 libvirt guest)', ours, listenerPid(opsPort), libvirtdPid());
    await bench('prometheus-libvirt-exporter /metrics (the same guest)', theirs, exporter.pid!, libvirtdPid());
  } finally { exporter.kill('SIGTERM'); await compute.cleanup(); await domain.remove(); }
}

await (process.argv[3] === '--libvirt' ? libvirtMode() : qemuMode());
