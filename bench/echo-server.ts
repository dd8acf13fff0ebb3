// The AMQP floor's server side, run as its own process (as novamon-compute is): a trivial consumer on the
// bench exchange that answers every request on the caller's reply queue. Four queues, four variants:
//   echo.raw      plain amqplib: reply to properties.replyTo, then ack (no confirms) — the floor itself;
//   echo.confirm  reply on a confirm channel and ack only once the broker confirmed it (novamon's server);
//   echo.oslo     decode the oslo envelope and send an oslo reply to _reply_q (for our RpcClient);
//   echo.busy     as echo.raw after keeping the CPU busy for <busy ms> (a server that works before replying);
// and, given the peers in a JSON fourth argument, a compute call's path with nothing of novamon in it:
//   echo.file     as echo.raw after reading a console log's tail (get_console_output's path);
//   echo.qmp      as echo.raw after a guest's QEMU answered query-blockstats (get_instance_diagnostics');
//   echo.pg       as echo.raw after a console-token-shaped INSERT (get_vnc_console's).
// Usage: tsx bench/echo-server.ts <transport amqp url> <exchange> <busy ms> [{"consoleLog":..., "qmpSocket":...,
// "pgUrl":..., "pgPoolSize":..., "instanceUuid":...}]; prints "ready" on stdout.

import amqp, { type ConsumeMessage } from 'amqplib';
import { ECHO_FAILED_HEADER, type EchoPeers } from './lib/amqp-floor.js';
import { PgInsertFloor, RawQmp, qmpDiagnosticsBatch, readConsoleTail } from './lib/floors.js';

async function main(): Promise<void> {
  const [url, exchange, busyArg, peersArg] = process.argv.slice(2);
  const busyMs = Number(busyArg);
  const peers = (peersArg ? JSON.parse(peersArg) : {}) as EchoPeers;
  if (!url || !exchange || !(busyMs >= 0 && busyMs < 100)) throw new Error('usage: echo-server.ts AMQP_URL EXCHANGE BUSY_MS [PEERS_JSON]');
  // noDelay as novamon's own connections (src/rpc/amqp-connection.ts): Nagle would add up to 40 ms per reply.
  const conn = await amqp.connect(url, { noDelay: true });
  const ch = await conn.createChannel();
  const confirmCh = await conn.createConfirmChannel();
  await ch.assertExchange(exchange, 'topic', { durable: false, autoDelete: false });
  await ch.prefetch(64);
  const queues: string[] = [];
  for (const key of ['echo.raw', 'echo.confirm', 'echo.oslo', 'echo.busy', 'echo.file', 'echo.qmp', 'echo.pg']) {
    const q = `${exchange}.${key}`;
    await ch.assertQueue(q, { durable: false, autoDelete: true });
    await ch.bindQueue(q, exchange, key);
    queues.push(q);
  }

  const raw = (m: ConsumeMessage | null) => {
    if (!m) return;
    ch.publish('', String(m.properties.replyTo), m.content, { correlationId: m.properties.correlationId });
    ch.ack(m);
  };
  const confirmed = (m: ConsumeMessage | null) => {
    if (!m) return;
    confirmCh.publish('', String(m.properties.replyTo), m.content, { correlationId: m.properties.correlationId }, (err: unknown) => {
      if (err) ch.nack(m);
      else ch.ack(m);
    });
  };
  const oslo = (m: ConsumeMessage | null) => {
    if (!m) return;
    const outer = JSON.parse(m.content.toString('utf8')) as { 'oslo.message': string };
    const inner = JSON.parse(outer['oslo.message']) as { _msg_id: string; _reply_q: string };
    const reply = JSON.stringify({ result: null, failure: null, _msg_id: inner._msg_id, ending: true });
    const body = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': reply }));
    ch.publish('', inner._reply_q, body, { contentType: 'application/json', contentEncoding: 'utf-8' });
    ch.ack(m);
  };
  const busy = (m: ConsumeMessage | null) => {
    const until = performance.now() + busyMs;
    while (performance.now() < until); // CPU work, not a timer: the process stays runnable throughout
    raw(m);
  };
  await ch.consume(queues[0] as string, raw);
  await ch.consume(queues[1] as string, confirmed);
  await ch.consume(queues[2] as string, oslo);
  await ch.consume(queues[3] as string, busy);
  // The peer's work first, then the plain reply. A failed step is answered with ECHO_FAILED_HEADER, which
  // RawAmqpCaller turns into a rejection: the load counts it as an error, never as a fast call.
  const after = (work: () => Promise<unknown>) => (m: ConsumeMessage | null) => {
    if (!m) return;
    work().then(
      () => raw(m),
      (err: unknown) => {
        ch.publish('', String(m.properties.replyTo), Buffer.alloc(0), { correlationId: m.properties.correlationId, headers: { [ECHO_FAILED_HEADER]: String(err).slice(0, 200) } });
        ch.ack(m);
      },
    );
  };
  if (peers.consoleLog) {
    const file = peers.consoleLog;
    await ch.consume(queues[4] as string, after(() => readConsoleTail(file)));
  }
  if (peers.qmpSocket) {
    const qmp = await RawQmp.connect(peers.qmpSocket);
    await ch.consume(queues[5] as string, after(() => qmpDiagnosticsBatch(qmp)));
  }
  if (peers.pgUrl) {
    const insert = await PgInsertFloor.open(peers.pgUrl, peers.pgPoolSize ?? 4);
    const uuid = peers.instanceUuid ?? '00000000-0000-4000-8000-000000000000';
    await ch.consume(queues[6] as string, after(() => insert.insertOne(uuid)));
  }
  process.stdout.write('ready\n');

  const stop = () => {
    void conn.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Never outlive the benchmark that started us.
  process.stdin.on('end', stop);
  process.stdin.resume();
}

main().catch((err: unknown) => {
  process.stderr.write(`echo-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
