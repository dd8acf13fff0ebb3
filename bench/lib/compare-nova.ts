// --compare-nova: the Nova-stack anchor (../shared/anchor/anchor_compute.py: oslo.messaging +
// libvirt-python + one PostgreSQL row per call, Nova's call sequence) on its own libvirt guests, and
// novamon-compute with compute_driver = libvirt serving those same guests, loaded by the same oslo-wire
// client with the same calls as the qemu-driver run; the ratios to the anchor are the figures that count.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { AnchorProcess, createAnchorDomains, destroyAnchorDomains, setupAnchorDatabase, type AnchorGuest } from './anchor.js';
import type { BenchOptions } from './args.js';
import { BENCH_METHODS, ComputeCaller, type BenchMethod } from './compute-rpc.js';
import { runClosedLoop } from './load.js';
import { sampleProcess } from './proc.js';
import { progress } from './progress.js';
import type { CallPhase, RawRuns } from './report.js';
import { prepareService, ServiceProcess, TRANSPORT_URL, dropDatabase } from './service.js';
import { median, round } from './stats.js';

/** The in-flight levels the comparison is stated at. */
export const COMPARE_IN_FLIGHT = [1, 32];

export interface CompareFigure {
  callsPerSec: number;
  p50: number;
  p99: number;
  /** CPU seconds per 1,000 calls of the serving process (anchor_compute.py or novamon-compute). */
  cpuSecPer1000: number;
  errors: number;
}

export interface CompareRow {
  method: string;
  inFlight: number;
  anchor: CompareFigure;
  qemu: CompareFigure | null;
  libvirt: CompareFigure | null;
  /** novamon calls/s ÷ the anchor's. */
  qemuThroughputRatio: number;
  libvirtThroughputRatio: number;
  /** The anchor's p50 ÷ novamon's (above 1: novamon answers faster). */
  qemuP50Ratio: number;
  libvirtP50Ratio: number;
}

export interface CompareNovaResult {
  label: string;
  guests: number;
  rows: CompareRow[];
}

type Serve = (method: BenchMethod, g: AnchorGuest) => Promise<unknown>;

/**
 * The anchor answers in tens to hundreds of ms under load: short quick-mode windows would count only a
 * handful of its calls (or none at 32 in flight). The compute calls of the main run use the same windows.
 */
export function compareWindows(opts: BenchOptions): { warmupMs: number; windowMs: number } {
  return { warmupMs: Math.max(opts.warmupMs, 500), windowMs: Math.max(opts.windowMs, 3000) };
}

/** One method at one in-flight level, `repeats` times; medians, with `pid`'s CPU over each window. */
async function measure(opts: BenchOptions, call: Serve, guests: readonly AnchorGuest[], method: BenchMethod, c: number, pid: number): Promise<CompareFigure> {
  const reps: CompareFigure[] = [];
  for (let rep = 0; rep < opts.repeats; rep++) {
    let cpu0 = 0;
    let cpu1 = 0;
    const r = await runClosedLoop({
      concurrency: c,
      warmupMs: compareWindows(opts).warmupMs,
      durationMs: compareWindows(opts).windowMs,
      call: (seq) => call(method, guests[seq % guests.length] as AnchorGuest),
      onMeasureStart: () => void (cpu0 = sampleProcess(pid).cpuSec),
      onMeasureEnd: () => void (cpu1 = sampleProcess(pid).cpuSec),
    });
    if (r.errors) progress(`  warning: ${r.errors} failed ${method} calls; first: ${r.firstError}`);
    reps.push({ callsPerSec: r.calls ? r.callsPerSec : Number.NaN, p50: r.latencyMs.p50, p99: r.latencyMs.p99, cpuSecPer1000: r.calls ? ((cpu1 - cpu0) / r.calls) * 1000 : Number.NaN, errors: r.errors });
  }
  const m = (k: keyof CompareFigure) => round(median(reps.map((x) => x[k])), 3);
  return { callsPerSec: m('callsPerSec'), p50: m('p50'), p99: m('p99'), cpuSecPer1000: m('cpuSecPer1000'), errors: reps.reduce((a, x) => a + x.errors, 0) };
}

async function measureAll(opts: BenchOptions, who: string, call: Serve, guests: readonly AnchorGuest[], pid: number): Promise<Map<string, CompareFigure>> {
  const out = new Map<string, CompareFigure>();
  for (const method of BENCH_METHODS.filter((x) => opts.methods.includes(x))) {
    for (const c of COMPARE_IN_FLIGHT) {
      const f = await measure(opts, call, guests, method, c, pid);
      out.set(`${method}@${c}`, f);
      progress(`  ${who} ${method} @${c}: ${f.callsPerSec.toFixed(0)}/s p50 ${f.p50.toFixed(2)} ms p99 ${f.p99.toFixed(2)} ms, ${f.cpuSecPer1000.toFixed(2)} CPU s/1k`);
    }
  }
  return out;
}

/** Waits until the service answers, then touches every guest once (monitor connections, discovery). */
async function serviceReady(caller: ComputeCaller, service: ServiceProcess, guests: readonly AnchorGuest[]): Promise<void> {
  await service.waitAnswering(caller, 'novamon-compute (libvirt)');
  for (const g of guests) await caller.call('get_instance_diagnostics', g).catch((err: unknown) => progress(`  warning: ${g.name}: ${String(err)}`));
}

async function runAnchor(opts: BenchOptions, guests: readonly AnchorGuest[]): Promise<Map<string, CompareFigure>> {
  const suffix = randomBytes(4).toString('hex');
  const host = `bench-anchor-${suffix}`;
  const exchange = `novamon_bench_anchor_${suffix}`;
  const anchor = await AnchorProcess.start(host, exchange, TRANSPORT_URL);
  const caller = await ComputeCaller.open(TRANSPORT_URL, exchange, host);
  try {
    progress(`compare-nova: anchor_compute.py serving compute.${host} (pid ${anchor.pid})`);
    for (const g of guests) await caller.call('get_console_output', g);
    return await measureAll(opts, 'anchor', (m, g) => caller.call(m, g), guests, anchor.pid);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nanchor output:\n${anchor.logTail()}`, { cause: err });
  } finally {
    await caller.close().catch(() => undefined);
    await anchor.stop();
  }
}

async function runNovamonLibvirt(opts: BenchOptions, tmpDir: string, guests: readonly AnchorGuest[]): Promise<Map<string, CompareFigure>> {
  const dir = path.join(tmpDir, 'libvirt');
  await mkdir(path.join(dir, 'instances'), { recursive: true });
  const setup = await prepareService(dir, path.join(dir, 'instances'), null, 'libvirt');
  const service = ServiceProcess.start(setup);
  const caller = await ComputeCaller.open(TRANSPORT_URL, setup.exchange, setup.host);
  try {
    await serviceReady(caller, service, guests);
    progress(`compare-nova: novamon-compute (libvirt driver) serving compute.${setup.host} (pid ${service.pid})`);
    return await measureAll(opts, 'novamon libvirt', (m, g) => caller.call(m, g), guests, service.pid);
  } finally {
    await caller.close().catch(() => undefined);
    await service.stop();
    if (!opts.keepDatabase) await dropDatabase(setup.databaseName).catch(() => undefined);
  }
}

/** novamon's qemu-driver figures from the main run (medians over its repeats). */
function qemuFigure(runs: RawRuns, method: string, c: number): CompareFigure | null {
  const phases = runs.calls[method]?.[c];
  if (!phases || phases.length === 0) return null;
  const m = (f: (p: CallPhase) => number) => round(median(phases.map(f)), 3);
  return { callsPerSec: m((p) => p.callsPerSec), p50: m((p) => p.p50), p99: m((p) => p.p99), cpuSecPer1000: m((p) => p.cpuSecPer1000), errors: phases.reduce((a, p) => a + p.errors, 0) };
}

/**
 * Creates the anchor's libvirt guests, measures the anchor and then novamon's libvirt driver on them,
 * and destroys the guests whatever happens. `runs` holds the qemu driver's figures from the same run.
 */
export async function runCompareNova(opts: BenchOptions, tmpDir: string, runs: RawRuns): Promise<CompareNovaResult> {
  await setupAnchorDatabase();
  // domains.py names its guests instance-000000b0..cf: 32 at most.
  const count = Math.min(opts.guests, 32);
  progress(`compare-nova: creating ${count} libvirt guests (../shared/anchor/domains.py)`);
  try {
    const guests = await createAnchorDomains(count);
    const anchor = await runAnchor(opts, guests);
    const libvirt = await runNovamonLibvirt(opts, tmpDir, guests);
    const rows: CompareRow[] = [];
    for (const [key, a] of anchor) {
      const [method, c] = key.split('@') as [string, string];
      const q = qemuFigure(runs, method, Number(c));
      const l = libvirt.get(key) ?? null;
      rows.push({
        method,
        inFlight: Number(c),
        anchor: a,
        qemu: q,
        libvirt: l,
        qemuThroughputRatio: q ? round(q.callsPerSec / a.callsPerSec, 2) : Number.NaN,
        libvirtThroughputRatio: l ? round(l.callsPerSec / a.callsPerSec, 2) : Number.NaN,
        qemuP50Ratio: q ? round(a.p50 / q.p50, 2) : Number.NaN,
        libvirtP50Ratio: l ? round(a.p50 / l.p50, 2) : Number.NaN,
      });
    }
    return { label: 'Nova-stack anchor (../shared/anchor: oslo.messaging + libvirt-python + a PostgreSQL row per call) on libvirt guests', guests: guests.length, rows };
  } finally {
    progress('compare-nova: destroying the anchor\'s libvirt guests');
    await destroyAnchorDomains().catch((err: unknown) => progress(`warning: domains.py destroy failed: ${String(err)}`));
  }
}

/** The comparison table, one line per method and in-flight level. */
export function comparisonLines(r: CompareNovaResult): string[] {
  const f = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '–');
  const fig = (x: CompareFigure | null) => (x ? `${f(x.callsPerSec).padStart(6)}/s ${f(x.p50, 2).padStart(7)} ms` : '            –    ');
  const out = [`Compared with ${r.label}, ${r.guests} guests:`];
  out.push(`  ${'method'.padEnd(26)} in flight   ${'anchor'.padEnd(18)}  ${'novamon qemu'.padEnd(18)}  ×calls/s  ×p50   ${'novamon libvirt'.padEnd(18)}  ×calls/s  ×p50`);
  for (const row of r.rows) {
    out.push(
      `  ${row.method.padEnd(26)} ${String(row.inFlight).padStart(9)}   ${fig(row.anchor)}  ${fig(row.qemu)}  ${`${f(row.qemuThroughputRatio, 2)}×`.padStart(8)}  ${`${f(row.qemuP50Ratio, 2)}×`.padStart(5)}   ${fig(row.libvirt)}  ${`${f(row.libvirtThroughputRatio, 2)}×`.padStart(8)}  ${`${f(row.libvirtP50Ratio, 2)}×`.padStart(5)}`,
    );
  }
  out.push('  (×calls/s = novamon ÷ anchor; ×p50 = anchor p50 ÷ novamon p50, above 1 = novamon faster; the qemu driver serves the fixture guests of the main run)');
  return out;
}

/** The targets stated against the anchor: qemu ≥ 10× its calls/s at 32 in flight and ≥ 3× better p50 at 1; libvirt ≥ 3× at 32. */
export function compareTargets(r: CompareNovaResult): { name: string; target: string; measured: string; met: boolean | null }[] {
  const out: { name: string; target: string; measured: string; met: boolean | null }[] = [];
  const top = Math.max(...COMPARE_IN_FLIGHT);
  for (const row of r.rows) {
    if (row.inFlight === top) {
      out.push({ name: `${row.method} @${top} qemu vs anchor`, target: '≥ 10× calls/s', measured: `${row.qemuThroughputRatio}×`, met: Number.isFinite(row.qemuThroughputRatio) ? row.qemuThroughputRatio >= 10 : null });
      out.push({ name: `${row.method} @${top} libvirt vs anchor`, target: '≥ 3× calls/s', measured: `${row.libvirtThroughputRatio}×`, met: Number.isFinite(row.libvirtThroughputRatio) ? row.libvirtThroughputRatio >= 3 : null });
    } else if (row.inFlight === 1) {
      out.push({ name: `${row.method} @1 qemu p50 vs anchor`, target: '≥ 3× better p50', measured: `${row.qemuP50Ratio}× (${row.qemu?.p50 ?? '–'} vs ${row.anchor.p50} ms)`, met: Number.isFinite(row.qemuP50Ratio) ? row.qemuP50Ratio >= 3 : null });
    }
  }
  return out;
}
