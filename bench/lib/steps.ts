// The steps of calls traced by bench/step-trace.mjs: split into calls, grouped by shape, timed.

import { median } from './stats.js';

export type Call = Array<[step: string, at: number]>;

/** The calls in an event list [step, ms, step, ms, ...]: each from `delivery>` to the next `amqp write`. */
export function callsOf(events: readonly unknown[]): Call[] {
  const calls: Call[] = [];
  let current: Call | null = null;
  for (let i = 0; i + 1 < events.length; i += 2) {
    const step = String(events[i]);
    const at = Number(events[i + 1]);
    if (step === 'delivery>') current = [];
    if (!current) continue;
    current.push([step, at]);
    if (step === 'amqp write') {
      calls.push(current);
      current = null;
    }
  }
  return calls;
}

/** Per shape (the call's steps in order), most frequent first: how many calls, each gap's median, the total's. */
export function stepReport(calls: readonly Call[], shapes: number): string[] {
  const byShape = new Map<string, Call[]>();
  for (const c of calls) {
    const shape = c.map(([s]) => s).join(' ');
    const group = byShape.get(shape);
    if (group) group.push(c);
    else byShape.set(shape, [c]);
  }
  const us = (ms: number): string => (ms * 1000).toFixed(0);
  const out: string[] = [];
  for (const [, group] of [...byShape].sort((a, b) => b[1].length - a[1].length).slice(0, shapes)) {
    const first = group[0] as Call;
    const total = median(group.map((c) => (c[c.length - 1] as [string, number])[1] - (c[0] as [string, number])[1]));
    out.push(`${group.length} calls, ${us(total)} µs median from delivery to the reply's write:`);
    for (let k = 1; k < first.length; k++) {
      const gap = median(group.map((c) => (c[k] as [string, number])[1] - (c[k - 1] as [string, number])[1]));
      out.push(`  ${us(gap).padStart(6)} µs  ${(first[k - 1] as [string, number])[0]} → ${(first[k] as [string, number])[0]}`);
    }
  }
  return out;
}
