// `npm run bench:ab`: an A/B of novamon-compute variants over the same guests. Starts the guests once, then
// for every round starts the service once per variant (a fresh database each time), loads each method at
// one concurrency, and prints per variant the median over rounds of calls/s and of the CPU seconds per
// 1,000 calls spent by the service, RabbitMQ, PostgreSQL, the guests' QEMUs, the load generator and the whole machine.
// Rounds interleave the variants, so a machine that slows down for a while hurts them alike, and each round
// starts with the next variant; every other variant is then paired with the first round by round
// (bench/lib/paired.ts). CPU per call is steadier than calls/s on a shared machine. The launcher's
// young-generation cap, the AMQP write coalescing and the unconfirmed calls were judged with the scratch
// harness this grew from (docs/bench.md).
//
//   npm run bench:ab -- [--guests 16] [--rounds 3] [--in-flight 32] [--window-ms 4000] [--warmup-ms 1500]
//                       [--methods a,b] VARIANT...
//   VARIANT: base | node:--flag[,--flag...] (node flags after the launcher's) | env:NAME=VALUE (service env)
//            | tree:PATH (novamon-compute from another built checkout, e.g. a `git worktree` of another commit)

import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cleanUpOnSignals, cleanupAll, onCleanup } from '../test/fixtures/cleanup.js';
import { BENCH_METHODS, ComputeCaller, type BenchMethod } from './lib/compute-rpc.js';
import { startGuests, stopGuests, waitBooted, type BenchGuest } from './lib/guests.js';
import { runClosedLoop } from './lib/load.js';
import { componentPids, sampleComponents, type CpuComponents } from './lib/proc.js';
import { progress } from './lib/progress.js';
import { dropDatabase, prepareService, ServiceProcess, TRANSPORT_URL } from './lib/service.js';
import { formatPaired, paired, roundOrder } from './lib/paired.js';
import { median } from './lib/stats.js';

interface Variant {
  name: string;
  nodeArgs: string[];
  env: Record<string, string>;
  root?: string;
}

export function parseVariant(spec: string): Variant {
  if (spec === 'base') return { name: spec, nodeArgs: [], env: {} };
  if (spec.startsWith('node:')) {
    const flags = spec.slice(5).split(',').filter(Boolean);
    if (flags.length === 0 || !flags.every((f) => /^--[a-z0-9-]+(=\S+)?$/.test(f))) throw new Error(`bad node flags in ${spec}`);
    return { name: spec, nodeArgs: flags, env: {} };
  }
  if (spec.startsWith('tree:')) {
    const root = path.resolve(spec.slice(5));
    if (!existsSync(path.join(root, 'dist', 'src', 'main'))) throw new Error(`${spec}: no built checkout there (run npm run build in it)`);
    return { name: spec, nodeArgs: [], env: {}, root };
  }
  const m = /^env:([A-Z_][A-Z0-9_]*)=(.*)$/.exec(spec);
  if (m?.[1] !== undefined && m[2] !== undefined) return { name: spec, nodeArgs: [], env: { [m[1]]: m[2] } };
  throw new Error(`unknown variant ${spec}: base, node:--flag[,--flag], env:NAME=VALUE or tree:PATH`);
}

const COMPONENTS = ['service', 'rabbitmq', 'postgres', 'qemu', 'bench', 'machine'] as const;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      guests: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '3' },
      'in-flight': { type: 'string', default: '32' },
      'window-ms': { type: 'string', default: '4000' },
      'warmup-ms': { type: 'string', default: '1500' },
      methods: { type: 'string', default: BENCH_METHODS.join(',') },
    },
  });
  const int = (v: string, what: string, lo: number, hi: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`--${what} must be an integer in ${lo}..${hi}`);
    return n;
  };
  const guestsN = int(values.guests, 'guests', 1, 100);
  const rounds = int(values.rounds, 'rounds', 1, 20);
  const inFlight = int(values['in-flight'], 'in-flight', 1, 256);
  const windowMs = int(values['window-ms'], 'window-ms', 200, 60_000);
  const warmupMs = int(values['warmup-ms'], 'warmup-ms', 0, 60_000);
  const methods = values.methods.split(',').map((m) => {
    if (!(BENCH_METHODS as readonly string[]).includes(m)) throw new Error(`unknown method ${m}`);
    return m as BenchMethod;
  });
  const variants = (positionals.length > 0 ? positionals : ['base']).map(parseVariant);

  cleanUpOnSignals();
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'novamon-ab-'));
  onCleanup('temp dir', () => rm(tmp, { recursive: true, force: true }));
  const instancesPath = path.join(tmp, 'instances');
  await mkdir(instancesPath);
  const guests = await startGuests(instancesPath, guestsN, 8);
  onCleanup('guests', () => stopGuests(guests));
  // figures[variant][method][component or 'calls/s'] = one value per round
  const figures: Figures = new Map();
  const push = (v: string, m: string, k: string, x: number): void => {
    const byMethod = figures.get(v) ?? new Map<string, Map<string, number[]>>();
    figures.set(v, byMethod);
    const byKey = byMethod.get(m) ?? new Map<string, number[]>();
    byMethod.set(m, byKey);
    byKey.set(k, [...(byKey.get(k) ?? []), x]);
  };
  try {
    await waitBooted(guests, 300_000);
    for (let round = 1; round <= rounds; round++) {
      for (const v of roundOrder(variants, round)) {
        await measureVariant({ tmp, instancesPath, guests, variant: v, methods, inFlight, warmupMs, windowMs, round, push });
      }
    }
  } finally {
    await cleanupAll();
  }
  process.stdout.write(`${report(figures, variants, { guestsN, rounds, inFlight, windowMs }).join('\n')}\n`);
}

interface RoundSetup {
  tmp: string;
  instancesPath: string;
  guests: BenchGuest[];
  variant: Variant;
  methods: BenchMethod[];
  inFlight: number;
  warmupMs: number;
  windowMs: number;
  round: number;
  push: (v: string, m: string, k: string, x: number) => void;
}

/** One variant in one round: a fresh service and database, each method loaded once. */
async function measureVariant(o: RoundSetup): Promise<void> {
  const setup = await prepareService(o.tmp, o.instancesPath, null);
  const databaseStep = onCleanup('database', () => dropDatabase(setup.databaseName));
  const service = ServiceProcess.start(setup, o.variant);
  const serviceStep = onCleanup('novamon-compute', () => service.stop());
  const caller = await ComputeCaller.open(TRANSPORT_URL, setup.exchange, setup.host);
  const callerStep = onCleanup('rpc client', () => caller.close());
  try {
    await service.waitAnswering(caller, `novamon-compute (${o.variant.name})`);
    const pids = componentPids(service.pid, o.guests.map((g) => g.guest.currentPid()).filter((p): p is number => p !== null));
    for (const method of o.methods) {
      let before: CpuComponents | null = null;
      let after: CpuComponents | null = null;
      const r = await runClosedLoop({
        concurrency: o.inFlight,
        warmupMs: o.warmupMs,
        durationMs: o.windowMs,
        call: (seq) => caller.call(method, o.guests[seq % o.guests.length] as BenchGuest),
        onMeasureStart: () => void (before = sampleComponents(pids)),
        onMeasureEnd: () => void (after = sampleComponents(pids)),
      });
      const b = before as CpuComponents | null;
      const a = after as CpuComponents | null;
      // One value per round, NaN when it could not be measured, so index i is round i + 1 for the pairing.
      o.push(o.variant.name, method, 'calls/s', r.callsPerSec);
      for (const k of COMPONENTS) o.push(o.variant.name, method, k, a && b && r.calls > 0 ? ((a[k] - b[k]) / r.calls) * 1000 : Number.NaN);
      progress(`round ${o.round} ${o.variant.name} ${method} @${o.inFlight}: ${r.callsPerSec.toFixed(0)}/s p50 ${r.latencyMs.p50.toFixed(2)} ms${r.errors ? ` errors ${r.errors}` : ''}`);
    }
  } finally {
    await callerStep.run();
    await serviceStep.run();
    await databaseStep.run();
  }
}

type Figures = Map<string, Map<string, Map<string, number[]>>>;

/** Per variant the medians and each round's value; then each variant paired with the first, round by round. */
function report(figures: Figures, variants: readonly Variant[], run: { guestsN: number; rounds: number; inFlight: number; windowMs: number }): string[] {
  const out: string[] = [`A/B: ${run.guestsN} guests, ${run.rounds} rounds, ${run.inFlight} in flight, ${run.windowMs} ms windows; medians over rounds [each round]`];
  for (const [v, byMethod] of figures) {
    out.push(v);
    for (const [m, byKey] of byMethod) {
      const cell = (k: string, digits: number): string => {
        const xs = byKey.get(k) ?? [];
        return `${median(xs).toFixed(digits)} [${xs.map((x) => x.toFixed(digits)).join(' ')}]`;
      };
      out.push(`  ${m}: ${cell('calls/s', 0)} calls/s`);
      out.push(`    CPU s per 1,000 calls: ${COMPONENTS.map((k) => `${k} ${cell(k, 3)}`).join('  ')}`);
    }
  }
  const [reference, ...others] = variants;
  if (!reference || others.length === 0) return out;
  out.push(`paired with ${reference.name}, round by round (variant ÷ ${reference.name}: median [min..max]):`);
  const series = (v: string, m: string, k: string): number[] => figures.get(v)?.get(m)?.get(k) ?? [];
  for (const v of others) {
    for (const m of figures.get(v.name)?.keys() ?? []) {
      out.push(`  ${v.name} ${m}: calls/s ${formatPaired(paired(series(v.name, m, 'calls/s'), series(reference.name, m, 'calls/s'), true))}`);
      out.push(`    machine CPU per call ${formatPaired(paired(series(v.name, m, 'machine'), series(reference.name, m, 'machine'), false))}`);
      out.push(`    service CPU per call ${formatPaired(paired(series(v.name, m, 'service'), series(reference.name, m, 'service'), false))}`);
    }
  }
  return out;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
