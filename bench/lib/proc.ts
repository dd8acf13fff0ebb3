// What the service process costs, read from /proc: CPU seconds (utime + stime of all its threads), resident
// memory (VmRSS) and its peak (VmHWM). Sampled before and after each measured window.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticks: number | null = null;

function clockTicks(): number {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

export interface ProcSample {
  /** utime + stime, seconds. */
  cpuSec: number;
  rssKiB: number;
  hwmKiB: number;
}

export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { cpuSec: (utime + stime) / clockTicks(), rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

/**
 * Connected client sockets on the monitor sockets under `dir`, from /proc/net/unix: an accepted UNIX
 * socket carries its listener's path, so each line in state connected (03) is one QMP client. This
 * counts novamon's monitor connections without relying on the service's own metrics.
 */
export function monitorConnections(dir: string): number {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  let n = 0;
  for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const p = cols[7];
    if (cols[5] === '03' && p?.startsWith(prefix) && p.endsWith('.monitor')) n++;
  }
  return n;
}

/** Pids whose /proc/<pid>/comm is `comm` (e.g. beam.smp for RabbitMQ, postgres). */
export function pidsByComm(comm: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'latin1').trim() === comm) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Last CPU seconds read per pid, so a process that exits between two samples does not go negative. */
const lastCpuSec = new Map<number, number>();

/**
 * Sum of utime + stime (seconds) over `pids`. A pid that has exited counts with the last value read of
 * it, so a window's difference stays >= 0 (e.g. a PostgreSQL backend that ends mid-window); it loses what
 * that process spent after its last reading.
 */
export function cpuSecOf(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) {
    try {
      const cpu = sampleProcess(pid).cpuSec;
      lastCpuSec.set(pid, cpu);
      sum += cpu;
    } catch {
      sum += lastCpuSec.get(pid) ?? 0;
    }
  }
  return sum;
}

/** Busy CPU seconds of the whole machine so far (all cores; idle and iowait excluded), from /proc/stat. */
export function machineBusySec(): number {
  const line = readFileSync('/proc/stat', 'latin1').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return (total - idle) / clockTicks();
}

export interface CpuComponents {
  service: number;
  rabbitmq: number;
  postgres: number;
  qemu: number;
  bench: number;
  machine: number;
  /** performance.now() when the machine figure was read. */
  at: number;
}

export interface ComponentPids {
  service: number;
  rabbitmq: number[];
  postgres: number[];
  qemu: number[];
}

/** Resolve the processes once, before a window: scanning /proc takes long enough to skew a short window. */
export function componentPids(servicePid: number, qemuPids: readonly number[]): ComponentPids {
  return { service: servicePid, rabbitmq: pidsByComm('beam.smp'), postgres: pidsByComm('postgres'), qemu: [...qemuPids] };
}

/** Who is using the machine's CPU: the service, RabbitMQ, PostgreSQL, our guests' QEMUs, this process. */
export function sampleComponents(p: ComponentPids): CpuComponents {
  return {
    service: cpuSecOf([p.service]),
    rabbitmq: cpuSecOf(p.rabbitmq),
    postgres: cpuSecOf(p.postgres),
    qemu: cpuSecOf(p.qemu),
    bench: cpuSecOf([process.pid]),
    machine: machineBusySec(),
    at: performance.now(),
  };
}
