// `npm run bench`: the end-to-end cost of a compute call against the floors nobody can beat. Starts N
// fixture guests and novamon-compute (qemu driver, local RabbitMQ and PostgreSQL), loads it with
// get_console_output, get_instance_diagnostics and get_vnc_console at 1, 8 and 32 calls in flight, measures
// the AMQP, QMP, INSERT and file floors in the same run, and the stop→row lifecycle latency; every
// measurement is repeated and the medians are printed, written as JSON and drawn as SVG in bench/results/.

import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { shebangNodeFlags } from '../test/fixtures/launcher.js';
import { RpcClient } from '../src/rpc/client.js';
import { encodeEnvelope } from '../src/rpc/envelope.js';
import { instancePrimitive } from '../src/rpc/objects/instance.js';
import { EchoServer, RawAmqpCaller } from './lib/amqp-floor.js';
import { parseArgs, type BenchOptions } from './lib/args.js';
import { BENCH_METHODS, ComputeCaller, type BenchMethod } from './lib/compute-rpc.js';
import { PgInsertFloor, RawQmp, qmpDiagnosticsBatch, readConsoleTail } from './lib/floors.js';
import { startGuests, stopGuests, waitBooted, type BenchGuest } from './lib/guests.js';
import { measureLifecycle, type LifecycleRun } from './lib/lifecycle.js';
import { runClosedLoop, type LoadOptions } from './lib/load.js';
import { machineInfo } from './lib/machine.js';
import { componentPids, monitorConnections, sampleComponents, sampleProcess, type CpuComponents, type ProcSample } from './lib/proc.js';
import { summarizeProfiles } from './lib/profile.js';
import { progress } from './lib/progress.js';
import { buildReport, printTable, type CallPhase, type FloorName, type Phase, type RawRuns } from './lib/report.js';
import { renderSvg } from './lib/svg.js';
import { AMQP_URL, REPO_ROOT, TRANSPORT_URL, ServiceProcess, dropDatabase, metricValue, prepareService } from './lib/service.js';
import { median } from './lib/stats.js';
import { requireAnchor } from './lib/anchor.js';
import { cleanUpOnSignals, cleanupAll, onCleanup } from '../test/fixtures/cleanup.js';
import { compareWindows, runCompareNova, type CompareNovaResult } from './lib/compare-nova.js';

const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');

cleanUpOnSignals();

function phaseOf(r: Awaited<ReturnType<typeof runClosedLoop>>): Phase {
  return { callsPerSec: r.callsPerSec, p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99, calls: r.calls, errors: r.errors };
}

function load(opts: BenchOptions, concurrency: number, call: LoadOptions['call'], hooks: Partial<LoadOptions> = {}) {
  return runClosedLoop({ concurrency, warmupMs: opts.warmupMs, durationMs: opts.windowMs, call, ...hooks });
}

function fmt(p: Phase): string {
  return `${p.callsPerSec.toFixed(0)}/s p50 ${p.p50.toFixed(2)} ms p99 ${p.p99.toFixed(2)} ms${p.errors ? ` errors ${p.errors}` : ''}`;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  // Before anything starts: a comparison that cannot run must say so now, not after the main run.
  if (opts.compareNova) requireAnchor();
  const machine = machineInfo();
  const startedAt = new Date();
  progress(`machine: ${machine.cores} cores, ${machine.cpuModel}, kernel ${machine.kernel}, ${machine.accel}, load ${machine.loadAvgAtStart.join(' ')}`);
  progress(`plan: ${opts.guests} guests, ${opts.repeats} repeats, windows ${opts.windowMs} ms (+${opts.warmupMs} ms warm-up), in flight ${opts.concurrency.join('/')}`);

  const tmp = await mkdtemp(path.join(os.tmpdir(), 'novamon-bench-'));
  onCleanup('temp dir', () => rm(tmp, { recursive: true, force: true }));
  const instancesPath = path.join(tmp, 'instances');
  // The floor guests live outside instances_path: novamon must not hold their monitors. One answers the raw
  // QMP floor, the other the echo server's composed diagnostics path (QEMU serves one client per monitor).
  const floorPath = path.join(tmp, 'floor');
  await mkdir(instancesPath);
  await mkdir(floorPath);

  // ---- guests -------------------------------------------------------------------------------
  const guests: BenchGuest[] = [];
  onCleanup('guests', () => stopGuests(guests));
  const floorGuests = await startGuests(floorPath, 2, 2, 0xbf000);
  guests.push(...floorGuests);
  const served = await startGuests(instancesPath, opts.guests, opts.bootBatch);
  guests.push(...served);
  const booted = await waitBooted(guests, 120_000);
  progress(`guests: ${booted}/${guests.length} booted (${opts.guests} served by novamon, 2 for the QMP floors)`);
  const floorGuest = floorGuests[0] as BenchGuest;

  // ---- service ------------------------------------------------------------------------------
  const profileDir = opts.profile ? path.join(RESULTS_DIR, 'profile', `run-${Date.now()}`) : null;
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const setup = await prepareService(tmp, instancesPath, profileDir);
  if (!opts.keepDatabase) onCleanup('database', () => dropDatabase(setup.databaseName));
  progress(`database ${setup.databaseName} synced; starting novamon-compute (host ${setup.host}, exchange ${setup.exchange})`);
  const service = ServiceProcess.start(setup);
  onCleanup('novamon-compute', () => service.stop());
  const caller = await ComputeCaller.open(TRANSPORT_URL, setup.exchange, setup.host);
  onCleanup('rpc client', () => caller.close());
  const tStart = performance.now();
  await service.waitAnswering(caller);
  const startupSec = (performance.now() - tStart) / 1000;
  const rssAfterStart = sampleProcess(service.pid);
  progress(`novamon-compute ready in ${startupSec.toFixed(1)} s (pid ${service.pid}, RSS ${(rssAfterStart.rssKiB / 1024).toFixed(1)} MiB)`);

  const db = new pg.Client({ connectionString: setup.databaseUrl, connectionTimeoutMillis: 10_000 });
  await db.connect();
  onCleanup('db client', () => db.end());
  const discovered = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM instances WHERE deleted = 0')).rows[0]?.n ?? 0);
  if (discovered !== opts.guests) progress(`warning: novamon discovered ${discovered} guests, expected ${opts.guests}`);

  // Touch every guest once so each monitor connection is open, then read the memory "with N connected".
  const touchErrors: string[] = [];
  for (let i = 0; i < served.length; i += 8) {
    await Promise.all(served.slice(i, i + 8).map((g) => caller.call('get_instance_diagnostics', g).catch((err: unknown) => touchErrors.push(String(err)))));
  }
  if (touchErrors.length) progress(`warning: ${touchErrors.length} guest(s) failed get_instance_diagnostics: ${touchErrors[0]}`);
  const metrics0 = await service.metrics().catch(() => new Map<string, number>());
  // The service's gauge when it reports one; else counted from /proc/net/unix (accepted monitor sockets).
  const gauge = metricValue(metrics0, 'novamon_qmp_connections');
  const qmpConnections = gauge ? gauge : monitorConnections(instancesPath);
  qmpCounterAvailable = (metricValue(metrics0, 'novamon_qmp_commands_total') ?? 0) > 0;
  const rssConnected = sampleProcess(service.pid);
  progress(`all guests touched: QMP connections ${qmpConnections ?? '?'}, RSS ${(rssConnected.rssKiB / 1024).toFixed(1)} MiB`);

  // ---- floors' peers --------------------------------------------------------------------------
  const sampleGuest = served[0] as BenchGuest;
  const insert = await PgInsertFloor.open(setup.databaseUrl, setup.poolSize);
  onCleanup('pg floor', () => insert.close());
  const echoExchange = `novamon_bench_echo_${randomBytes(4).toString('hex')}`;
  const echo = await EchoServer.start(AMQP_URL, echoExchange, {
    consoleLog: sampleGuest.guest.consoleLogPath,
    qmpSocket: (floorGuests[1] as BenchGuest).guest.socketPath,
    pgUrl: setup.databaseUrl,
    pgPoolSize: setup.poolSize,
    instanceUuid: sampleGuest.uuid,
  });
  onCleanup('echo server', () => echo.stop());
  const raw = await RawAmqpCaller.open(AMQP_URL, echoExchange);
  onCleanup('raw amqp caller', () => raw.close());
  const echoClient = new RpcClient({ connection: caller.connection, exchange: echoExchange, timeoutMs: 10_000, logger: (await import('pino')).pino({ level: 'silent' }) });
  onCleanup('echo rpc client', () => echoClient.close());
  const qmp = await RawQmp.connect(floorGuest.guest.socketPath);
  onCleanup('raw qmp', async () => qmp.close());
  // The raw AMQP floor carries the bytes a real get_console_output call carries.
  const requestBody = encodeEnvelope({
    method: 'get_console_output',
    args: { instance: instancePrimitive({ uuid: sampleGuest.uuid, id: sampleGuest.id, host: setup.host }), tail_length: 50 },
    version: '6.0',
    _msg_id: randomBytes(16).toString('hex'),
    _reply_q: `reply_${randomBytes(16).toString('hex')}`,
    _timeout: null,
    _unique_id: randomBytes(16).toString('hex'),
    _context_user_id: 'bench-user',
    _context_project_id: 'bench-project',
    _context_is_admin: false,
    _context_request_id: `req-${randomBytes(16).toString('hex')}`,
    _context_roles: ['member', 'reader'],
  });

  const floorCalls: Record<FloorName, { conc: number[]; call: (seq: number) => Promise<unknown> }> = {
    amqp: { conc: opts.floorConcurrency, call: () => raw.call('echo.raw', requestBody) },
    amqp_confirm: { conc: opts.floorConcurrency, call: () => raw.call('echo.confirm', requestBody) },
    // Latency context only (docs/bench.md): at 1 in flight, what the broker's hops cost once the server works.
    amqp_busy: { conc: [1], call: () => raw.call('echo.busy', requestBody) },
    // Each call's own path with nothing of novamon in it, one process doing its peer's work between the hops.
    path_console: { conc: [1], call: () => raw.call('echo.file', requestBody) },
    path_diagnostics: { conc: [1], call: () => raw.call('echo.qmp', requestBody) },
    path_vnc: { conc: [1], call: () => raw.call('echo.pg', requestBody) },
    rpc_client_echo: { conc: opts.floorConcurrency, call: () => echoClient.call({ topic: 'echo', server: 'oslo', version: '6.0' }, {}, 'echo', {}) },
    qmp: { conc: opts.floorConcurrency, call: () => qmp.execute('query-status') },
    qmp_diag_batch: { conc: opts.floorConcurrency, call: () => qmpDiagnosticsBatch(qmp) },
    pg_insert: { conc: opts.floorConcurrency, call: () => insert.insertOne(sampleGuest.uuid) },
    file_tail: { conc: opts.floorConcurrency, call: () => readConsoleTail(sampleGuest.guest.consoleLogPath) },
  };

  // ---- repeats ------------------------------------------------------------------------------
  const runs: RawRuns = { floors: {}, calls: {}, lifecycle: [] };
  const lifecycleRuns: LifecycleRun[] = [];
  for (let rep = 0; rep < opts.repeats; rep++) {
    progress(`repeat ${rep + 1}/${opts.repeats}: floors`);
    for (const [name, f] of Object.entries(floorCalls) as [FloorName, (typeof floorCalls)[FloorName]][]) {
      for (const c of f.conc) {
        const p = phaseOf(await load(opts, c, f.call));
        ((runs.floors[name] ??= {})[c] ??= []).push(p);
        progress(`  floor ${name} @${c}: ${fmt(p)}`);
      }
    }
    progress(`repeat ${rep + 1}/${opts.repeats}: compute calls`);
    for (const method of BENCH_METHODS.filter((m) => opts.methods.includes(m))) {
      for (const c of opts.concurrency) {
        const p = await measureCall(opts, service, caller, method, served, c);
        ((runs.calls[method] ??= {})[c] ??= []).push(p);
        progress(`  ${method} @${c}: ${fmt(p)}, ${p.cpuSecPer1000.toFixed(2)} CPU s/1000 calls, service CPU ${(p.serviceCpuShare * 100).toFixed(0)}%`);
        if (p.errors) progress(`  warning: ${p.errors} failed calls; first: ${p.firstError}`);
      }
    }
    progress(`repeat ${rep + 1}/${opts.repeats}: lifecycle (${opts.lifecyclePairs} stop/cont pairs)`);
    const lc = await measureLifecycle(caller, setup.databaseUrl, served, opts.lifecyclePairs);
    lifecycleRuns.push(lc);
    const stops = lc.samples.filter((s) => s.transition === 'stop→PAUSED').map((s) => s.sendToRowMs);
    progress(`  stop→row p50 ${median(stops).toFixed(1)} ms, monitor_command RTT ${lc.monitorRpcRttMs.toFixed(1)} ms`);
  }
  runs.lifecycle = lifecycleRuns;

  const rssEnd: ProcSample = sampleProcess(service.pid);
  const metricsEnd = await service.metrics().catch(() => new Map<string, number>());
  // Stop the service first so its CPU profile (if any) is written, then summarise it.
  await service.stop();
  let compare: CompareNovaResult | null = null;
  if (opts.compareNova) {
    // The fixture guests are done; the anchor's libvirt guests get the machine to themselves.
    await stopGuests(guests);
    compare = await runCompareNova(opts, tmp, runs);
  }
  let profile = null;
  if (profileDir) {
    const files = (await readdir(profileDir)).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profileDir, f));
    profile = await summarizeProfiles(files, REPO_ROOT);
  }

  const report = buildReport({
    opts,
    machine,
    startedAt,
    finishedAt: new Date(),
    service: {
      startupSec,
      guestsDiscovered: discovered,
      qmpConnections,
      qmpErrorsTotal: metricValue(metricsEnd, 'novamon_qmp_errors_total'),
      rssAfterStartKiB: rssAfterStart.rssKiB,
      rssAllConnectedKiB: rssConnected.rssKiB,
      rssEndKiB: rssEnd.rssKiB,
      hwmKiB: rssEnd.hwmKiB,
      memoryEnv: {
        'node flags (launcher)': shebangNodeFlags(path.join(REPO_ROOT, 'bin', 'novamon-compute.js')).join(' ') || 'none',
        ...Object.fromEntries(['MALLOC_ARENA_MAX', 'NODE_OPTIONS'].flatMap((k) => (process.env[k] ? [[k, process.env[k] as string]] : []))),
      },
    },
    runs,
    compare,
    profile,
  });
  await mkdir(RESULTS_DIR, { recursive: true });
  const jsonFile = path.join(RESULTS_DIR, `${opts.out}.json`);
  const svgFile = path.join(RESULTS_DIR, `${opts.out}.svg`);
  await writeFile(jsonFile, JSON.stringify(report, null, 1) + '\n');
  await writeFile(svgFile, renderSvg(report));
  printTable(report);
  process.stdout.write(`\nwritten: ${path.relative(process.cwd(), jsonFile)}, ${path.relative(process.cwd(), svgFile)}\n`);
}

/** One measured phase of a compute call, with the service's CPU and QMP commands over the window. */
/** Set once the service showed it counts QMP commands; scraping /metrics costs it CPU, so only then. */
let qmpCounterAvailable = false;

async function measureCall(opts: BenchOptions, service: ServiceProcess, caller: ComputeCaller, method: BenchMethod, guests: readonly BenchGuest[], c: number): Promise<CallPhase> {
  let before: CpuComponents | null = null;
  let after: CpuComponents | null = null;
  // Postgres backends come and go (other jobs); the ones alive now are the ones that matter.
  const pids = componentPids(service.pid, guests.map((g) => g.guest.currentPid()).filter((p): p is number => p !== null));
  let issued = 0;
  const m0 = qmpCounterAvailable ? await service.metrics().catch(() => null) : null;
  // Compared with the anchor, both sides get the same (longer) windows: see compare-nova.ts.
  const r = await load(
    opts.compareNova ? { ...opts, ...compareWindows(opts) } : opts,
    c,
    (seq) => {
      issued++;
      return caller.call(method, guests[seq % guests.length] as BenchGuest);
    },
    {
      onMeasureStart: () => {
        before = sampleComponents(pids);
      },
      onMeasureEnd: () => {
        after = sampleComponents(pids);
      },
    },
  );
  const m1 = m0 ? await service.metrics().catch(() => null) : null;
  const b = before as CpuComponents | null;
  const a = after as CpuComponents | null;
  const d = (k: keyof CpuComponents) => (a && b ? a[k] - b[k] : Number.NaN);
  const sampledSec = d('at') / 1000;
  const per1000 = (v: number) => (r.calls > 0 ? (v / r.calls) * 1000 : Number.NaN);
  const cpu = d('service');
  const known = d('service') + d('rabbitmq') + d('postgres') + d('qemu') + d('bench');
  const q0 = m0 ? metricValue(m0, 'novamon_qmp_commands_total') : null;
  const q1 = m1 ? metricValue(m1, 'novamon_qmp_commands_total') : null;
  return {
    ...phaseOf(r),
    cpuSecPer1000: r.calls > 0 ? (cpu / r.calls) * 1000 : Number.NaN,
    serviceCpuShare: cpu / (r.elapsedMs / 1000),
    rabbitmqCpuPer1000: per1000(d('rabbitmq')),
    postgresCpuPer1000: per1000(d('postgres')),
    qemuCpuPer1000: per1000(d('qemu')),
    benchCpuPer1000: per1000(d('bench')),
    otherCpuPer1000: per1000(Math.max(0, d('machine') - known)),
    machineBusyShare: Math.min(1, d('machine') / sampledSec / os.availableParallelism()),
    // Only when the service's driver reports its command counter (checked once at start: m0/m1 are null
    // otherwise); then a 0 delta is a call that sent no monitor command, shown as 0, not as unknown.
    qmpPerCall: q0 !== null && q1 !== null && issued > 0 ? (q1 - q0) / issued : Number.NaN,
    firstError: r.firstError,
  };
}

main()
  .catch(async (err: unknown) => {
    process.stderr.write(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanupAll();
    // amqplib and pg handles are closed above; exit in case a library left a timer behind.
    process.exit(process.exitCode ?? 0);
  });
