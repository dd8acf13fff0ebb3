// What every abuse fuzzer checks besides its own answers: a canary file outside instances_path that no
// response may contain and nothing may open (watched with inotify, IN_OPEN | IN_ACCESS, from a small
// Python helper since Node has no inotify binding), and the event-loop blocks the service under test
// logged itself ('event loop blocked', src/event-loop-probe.ts), matched to the input being served then.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const WATCH_PY = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x20 | 0x01) < 0:
    sys.exit(2)
print("watching", flush=True)
while True:
    buf = os.read(fd, 4096)
    off = 0
    while off < len(buf):
        wd, mask, cookie, ln = struct.unpack_from("iIII", buf, off)
        off += 16 + ln
        print("open" if mask & 0x20 else "access", flush=True)
`;

export class Canary {
  readonly secret = `canary-${randomBytes(12).toString('hex')}`;
  readonly file: string;
  private watcher: ChildProcess | null = null;
  private events: string[] = [];

  /** The canary lives in `outside` (a directory that is not under instances_path). */
  constructor(outside: string) {
    mkdirSync(outside, { recursive: true });
    this.file = path.join(outside, 'secret.txt');
    writeFileSync(this.file, `${this.secret}\n`, { mode: 0o644 });
  }

  async watch(): Promise<void> {
    const w = spawn('python3', ['-c', WATCH_PY, this.file], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.watcher = w;
    let ready = false;
    w.stdout.on('data', (b: Buffer) => {
      for (const line of b.toString().split('\n').filter(Boolean)) {
        if (line === 'watching') ready = true;
        else this.events.push(line);
      }
    });
    for (let i = 0; i < 1200 && !ready; i++) await sleep(25); // Python starts slowly on a loaded host
    if (!ready) throw new Error('the inotify watcher on the canary did not start');
  }

  /** Opens and reads of the canary since watch(). */
  get touches(): number {
    return this.events.length;
  }

  leaks(text: string | Buffer): boolean {
    return (typeof text === 'string' ? text : text.toString('latin1')).includes(this.secret);
  }

  stop(): void {
    this.watcher?.kill('SIGTERM');
  }
}

/** Names and paths that would leave instances_path if anyone joined them to it. */
export function traversals(canary: Canary, instancesPath: string): string[] {
  const rel = path.relative(instancesPath, canary.file);
  const noExt = rel.replace(/\.txt$/, '');
  return [rel, noExt, canary.file, `${rel}\u0000`, encodeURIComponent(rel), rel.replaceAll('/', '%2f'), `./${rel}`, `${rel}/`, `..%2f..%2f${path.basename(canary.file)}`, `....//....//${path.basename(canary.file)}`, `/proc/self/root${canary.file}`, `file://${canary.file}`];
}

export interface LoopBlock {
  startedAt: number;
  blockedMs: number;
  cpuMs: number;
}

export function loopBlocks(lines: Array<Record<string, unknown>>): LoopBlock[] {
  return lines
    .filter((l) => l['msg'] === 'event loop blocked')
    .map((l) => ({ startedAt: Number(l['startedAt']), blockedMs: Number(l['blockedMs']), cpuMs: Number(l['cpuMs']) }));
}

export interface TimedInput {
  label: string;
  /** Epoch ms when the input was sent and when its answer (or its end) arrived. */
  start: number;
  end: number;
}

export interface Attributed {
  input: TimedInput;
  block: LoopBlock;
}

/** Each block, with the input that was being served while it began (inputs are sent one at a time). */
export function attribute(inputs: TimedInput[], blocks: LoopBlock[]): Attributed[] {
  const out: Attributed[] = [];
  for (const b of blocks) {
    // A block that began between two inputs belongs to the one just answered (work after its reply).
    const hit = inputs.find((x) => b.startedAt >= x.start - 5 && b.startedAt <= x.end + 5) ?? [...inputs].reverse().find((x) => x.start <= b.startedAt);
    if (hit) out.push({ input: hit, block: b });
  }
  return out.sort((a, b) => b.block.cpuMs - a.block.cpuMs);
}

/** The slowest input: by the event-loop block it caused if any was logged, else by its round trip. */
export function slowest(inputs: TimedInput[], attributed: Attributed[]): string {
  const top = attributed[0];
  if (top) return `${top.input.label} (loop held ${top.block.blockedMs} ms, ${top.block.cpuMs} ms CPU)`;
  const byTrip = [...inputs].sort((a, b) => b.end - b.start - (a.end - a.start))[0];
  return byTrip ? `${byTrip.label} (no block logged; round trip ${byTrip.end - byTrip.start} ms)` : 'none';
}
