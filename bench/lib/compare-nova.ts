// --compare-nova: the same get_console_output load against a Python oslo.messaging RPC server
// (bench/compare_nova_server.py, run with /usr/bin/python3) whose endpoint reads the guest's console the
// way Nova's libvirt driver ends up doing it for a logged serial port: the last 100 KiB of the log file.
// It is NOT nova-compute: it is Nova's RPC stack (oslo.messaging, eventlet-free threading executor) plus
// the same file read, which is the honest comparison available without a Nova deployment.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { pino } from 'pino';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient } from '../../src/rpc/client.js';
import { instancePrimitive } from '../../src/rpc/objects/instance.js';
import type { BenchOptions } from './args.js';
import { bounded } from './floors.js';
import type { BenchGuest } from './guests.js';
import { runClosedLoop } from './load.js';
import { sampleProcess } from './proc.js';
import { REPO_ROOT } from './service.js';
import { median } from './stats.js';

export interface CompareNovaResult {
  label: string;
  python: string;
  rows: { inFlight: number; callsPerSec: number; p50: number; p95: number; p99: number; cpuSecPer1000: number }[];
}

const PYTHON = process.env['NOVAMON_BENCH_PYTHON'] ?? '/usr/bin/python3';

export async function runCompareNova(opts: BenchOptions, guests: readonly BenchGuest[], amqpUrl: string): Promise<CompareNovaResult> {
  const suffix = randomBytes(4).toString('hex');
  const exchange = `novamon_bench_py_${suffix}`;
  const server = `bench-py-${suffix}`;
  const transportUrl = amqpUrl.replace(/^amqp:/, 'rabbit:');
  const consoleDir = path.dirname(guests[0]?.guest.consoleLogPath ?? '/');
  const child: ChildProcess = spawn(PYTHON, [path.join(REPO_ROOT, 'bench', 'compare_nova_server.py'), transportUrl, exchange, server, consoleDir], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const logger = pino({ level: 'silent' });
  const connection = new AmqpConnectionManager({ transportUrl, logger, connectionName: 'novamon-bench-compare' });
  try {
    await bounded(
      new Promise<void>((resolve, reject) => {
        child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`python server exited (${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`)));
      }),
      60_000,
      'starting the Python oslo.messaging server',
    );
    await connection.connect(10_000);
    const client = new RpcClient({ connection, exchange, timeoutMs: 30_000, logger });
    const target = { topic: 'compute', server, version: '6.0' };
    const call = (seq: number) => {
      const g = guests[seq % guests.length] as BenchGuest;
      return client.call(target, { requestId: `req-${randomUUID()}` }, 'get_console_output', {
        instance: instancePrimitive({ uuid: g.uuid, id: g.id, host: server }),
        tail_length: 50,
      });
    };
    const rows: CompareNovaResult['rows'] = [];
    const pid = child.pid as number;
    for (const c of opts.concurrency) {
      const reps = [];
      for (let rep = 0; rep < opts.repeats; rep++) {
        let cpu0 = 0;
        let cpu1 = 0;
        const r = await runClosedLoop({
          concurrency: c,
          warmupMs: opts.warmupMs,
          durationMs: opts.windowMs,
          call,
          onMeasureStart: () => {
            cpu0 = sampleProcess(pid).cpuSec;
          },
          onMeasureEnd: () => {
            cpu1 = sampleProcess(pid).cpuSec;
          },
        });
        if (r.errors) throw new Error(`python server failed calls: ${r.firstError}`);
        reps.push({ callsPerSec: r.callsPerSec, p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99, cpu: r.calls ? ((cpu1 - cpu0) / r.calls) * 1000 : NaN });
      }
      rows.push({
        inFlight: c,
        callsPerSec: median(reps.map((x) => x.callsPerSec)),
        p50: median(reps.map((x) => x.p50)),
        p95: median(reps.map((x) => x.p95)),
        p99: median(reps.map((x) => x.p99)),
        cpuSecPer1000: median(reps.map((x) => x.cpu)),
      });
    }
    await client.close();
    return {
      label: 'Python oslo.messaging RPC server (threading executor) + console log tail read; not nova-compute',
      python: PYTHON,
      rows,
    };
  } finally {
    await connection.close().catch(() => undefined);
    child.kill('SIGTERM');
  }
}
