// CPU one /metrics scrape costs. Default: novamon-compute (qemu driver) with one fixture guest, and optionally
// another exporter already running. --libvirt: one libvirt domain, novamon-compute with compute_driver =
// libvirt and Debian's prometheus-libvirt-exporter on that same domain, each scraped in turn; libvirtd's
// ticks (shared: other work on the machine lands there too) and the guest's QEMU threads other than its vCPUs
// (monitor and main loop answering libvirtd) are counted too. Counts utime+stime ticks over N sequential scrapes.
// Usage: npx tsx scripts/bench-metrics-scrape.mts N [EXPORTER_PID EXPORTER_PORT] [--paced]
//        npx tsx scripts/bench-metrics-scrape.mts N --libvirt [--paced]

import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { startComputeService } from '../test/fixtures/compute-service.js';
import { startFixtureGuest } from '../test/fixtures/guest.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain } from '../test/fixtures/libvirt-domain.js';
import { freePort } from '../test/fixtures/scratch.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const ticks = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' '); return Number(f[11]) + Number(f[12]); };
/** Ticks of a QEMU process's threads that are not vCPUs (TCG names them "CPU n/TCG"). */
const qemuNonVcpuTicks = (pid: number) => readdirSync(`/proc/${pid}/task`)
  .filter((tid) => !readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').startsWith('CPU '))
  .reduce((sum, tid) => { const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1').split(') ')[1]!.split(' '); return sum + Number(f[11]) + Number(f[12]); }, 0);
const libvirtdPid = () => Number(execFileSync('pgrep', ['-x', 'libvirtd']).toString().split('\n')[0]);
const listenerPid = (port: number) => Number(/pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `sport = :${port}`]).toString())![1]);
const n = Number(process.argv[2] ?? 300);

/** Also count: [label, ticks reader] pairs read before and after the scrapes. */
type Extra = [string, () => number];

/**
 * novamon's series of one scrape share a collection for 500 ms (src/main/guest-metrics.ts), so back-to-back
 * scrapes would mostly reuse one: with --paced every scrape waits PACE_MS after the last, as Prometheus'
 * interval does, and the ticks of the same time spent idle (measured first) are subtracted.
 */
const PACE_MS = 600;
const paced = process.argv.includes('--paced');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function countTicks(readers: (() => number)[], work: () => Promise<void>): Promise<{ ticks: number[]; wallMs: number }> {
  const t0 = readers.map((read) => read()); const w0 = performance.now();
  await work();
  return { ticks: readers.map((read, i) => read() - t0[i]!), wallMs: performance.now() - w0 };
}

async function bench(label: string, url: string, pid: number, extras: Extra[] = [], idle: number[] = []) {
  for (let i = 0; i < 10; i++) await (await fetch(url)).text();
  let busy = 0;
  const { ticks: d } = await countTicks([() => ticks(pid), ...extras.map(([, read]) => read)], async () => {
    for (let i = 0; i < n; i++) {
      if (paced) await sleep(PACE_MS);
      const w = performance.now(); await (await fetch(url)).text(); busy += performance.now() - w;
    }
  });
  const net = d.map((v, i) => v - (idle[i] ?? 0));
  const ms = (v: number) => `${v} ticks (${(v * 10 / n).toFixed(2)} ms/scrape)`;
  const extra = extras.map(([name], i) => `; ${name} ${ms(net[i + 1]!)}`).join('');
  out(`${label}: ${n} scrapes${paced ? ` ${PACE_MS} ms apart, idle ticks subtracted` : ''}, ${ms(net[0]!)} CPU${extra}, wall ${(busy / n).toFixed(1)} ms/scrape`);
}

/** Ticks of `pids` and `extras` over n idle pauses (only with --paced). */
async function idleTicks(pids: number[], extras: Extra[]): Promise<number[][]> {
  if (!paced) return pids.map(() => []);
  const readers = extras.map(([, read]) => read);
  const r = await countTicks([...pids.map((p) => () => ticks(p)), ...readers], async () => { for (let i = 0; i < n; i++) await sleep(PACE_MS); });
  const shared = r.ticks.slice(pids.length);
  return pids.map((_, i) => [r.ticks[i]!, ...shared]);
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
    const exp = Number(process.argv[3]); const expPort = Number(process.argv[4]);
    const [idleOurs, idleTheirs] = await idleTicks(exp ? [listenerPid(opsPort), exp] : [listenerPid(opsPort)], []);
    await bench('novamon-compute /metrics (1 fixture guest)', url, listenerPid(opsPort), [], idleOurs);
    if (exp) await bench('prometheus-libvirt-exporter /metrics (1 libvirt guest)', `http://127.0.0.1:${expPort}/metrics`, exp, [], idleTheirs);
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
    const qemuPid = Number(readFileSync(`/run/libvirt/qemu/${domain.name}.pid`, 'latin1').trim());
    const extras: Extra[] = [['libvirtd', () => ticks(libvirtdPid())], ['guest QEMU non-vCPU threads', () => qemuNonVcpuTicks(qemuPid)]];
    const [idleOurs, idleTheirs] = await idleTicks([listenerPid(opsPort), exporter.pid!], extras);
    await bench('novamon-compute /metrics, libvirt driver (1 libvirt guest)', ours, listenerPid(opsPort), extras, idleOurs);
    await bench('prometheus-libvirt-exporter /metrics (the same guest)', theirs, exporter.pid!, extras, idleTheirs);
  } finally { exporter.kill('SIGTERM'); await compute.cleanup(); await domain.remove(); }
}

await (process.argv.includes('--libvirt') ? libvirtMode() : qemuMode());
