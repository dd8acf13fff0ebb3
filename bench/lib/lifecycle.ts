// Lifecycle latency: how long after QEMU stops (or continues) a guest the instances row shows it. novamon
// holds the guest's only monitor, so the stop is sent through novamon itself (monitor_command over RPC);
// a dedicated pg connection polls the row every 2 ms from the moment the RPC is published.
//
// Measured per sample: t_send (RPC published), t_reply (RPC reply in), t_row (first poll showing the new
// power_state). QEMU emits the STOP event just before its reply to `stop`, so the event reaches novamon
// at about the moment the QMP reply does; from there the RPC reply still needs the audit row's UPDATE and
// one AMQP hop (≥ half the AMQP floor round trip) to reach us. Reported:
//   send→row            upper bound on event→row (includes AMQP in, the audit INSERT, QMP stop);
//   reply→row           t_row − t_reply per sample (negative: the row changed before the reply came);
//   event→row estimate  median(reply→row) + AMQP floor p50 / 2, never below 0;
//   monitor RPC RTT     round trip of monitor_command query-status (the same path with a harmless command).

import pg from 'pg';
import type { ComputeCaller } from './compute-rpc.js';
import type { BenchGuest } from './guests.js';
import { median } from './stats.js';

export const POWER_RUNNING = 1;
export const POWER_PAUSED = 3;
const POLL_MS = 2;

export interface LifecycleSample {
  transition: 'stop→PAUSED' | 'cont→RUNNING';
  sendToRowMs: number;
  sendToReplyMs: number;
}

export interface LifecycleRun {
  samples: LifecycleSample[];
  /** Median round trip of monitor_command {"execute":"query-status"} in this block. */
  monitorRpcRttMs: number;
}

async function powerState(client: pg.Client, uuid: string): Promise<number | null> {
  const r = await client.query<{ power_state: number | null }>('SELECT power_state FROM instances WHERE uuid = $1', [uuid]);
  return r.rows[0]?.power_state ?? null;
}

async function waitForState(client: pg.Client, uuid: string, want: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await powerState(client, uuid)) === want) return performance.now();
    if (performance.now() > deadline) throw new Error(`instances row of ${uuid} did not show power_state ${want} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function transition(caller: ComputeCaller, client: pg.Client, g: BenchGuest, command: 'stop' | 'cont', want: number): Promise<LifecycleSample> {
  const t0 = performance.now();
  // Poll from the moment the RPC goes out: the row may change before the reply arrives.
  const row = waitForState(client, g.uuid, want, 10_000);
  let tReply = Number.NaN;
  const reply = caller.monitorCommand(g, JSON.stringify({ execute: command })).then(() => {
    tReply = performance.now();
  });
  const [tRow] = await Promise.all([row, reply]);
  return { transition: command === 'stop' ? 'stop→PAUSED' : 'cont→RUNNING', sendToRowMs: tRow - t0, sendToReplyMs: tReply - t0 };
}

export async function measureLifecycle(caller: ComputeCaller, databaseUrl: string, guests: readonly BenchGuest[], pairs: number): Promise<LifecycleRun> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000, statement_timeout: 5000 });
  await client.connect();
  try {
    const rtts: number[] = [];
    for (let i = 0; i < Math.max(5, pairs); i++) {
      const t0 = performance.now();
      await caller.monitorCommand(guests[i % guests.length] as BenchGuest, '{"execute":"query-status"}');
      rtts.push(performance.now() - t0);
    }
    const samples: LifecycleSample[] = [];
    for (let i = 0; i < pairs; i++) {
      const g = guests[i % guests.length] as BenchGuest;
      // Start from a row that says RUNNING, so the change we wait for is this sample's.
      await waitForState(client, g.uuid, POWER_RUNNING, 10_000);
      samples.push(await transition(caller, client, g, 'stop', POWER_PAUSED));
      samples.push(await transition(caller, client, g, 'cont', POWER_RUNNING));
    }
    return { samples, monitorRpcRttMs: median(rtts) };
  } finally {
    await client.end();
  }
}
