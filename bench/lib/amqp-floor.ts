// The AMQP floor: request/reply round trips over loopback RabbitMQ against bench/echo-server.ts running in
// its own process. RawAmqpCaller is the thinnest possible caller (one channel, one exclusive reply queue,
// correlation ids); the same echo server also answers our RpcClient, to show what the client itself costs.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { bounded } from './floors.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * How long echo.busy works before it replies: about what novamon-compute spends between reading a
 * get_console_output delivery and writing its reply (docs/bench.md).
 */
export const ECHO_BUSY_MS = 0.25;

/** Header of the echo server's reply when a composed path's peer step failed (its value: the error). */
export const ECHO_FAILED_HEADER = 'x-echo-failed';

/** The peers of the echo server's composed paths; each path is served only when its peer is given. */
export interface EchoPeers {
  /** echo.file reads this console log's tail. */
  consoleLog?: string;
  /** echo.qmp asks this monitor query-blockstats (a guest nobody else holds). */
  qmpSocket?: string;
  /** echo.pg inserts a console-token row here (the table PgInsertFloor made). */
  pgUrl?: string;
  pgPoolSize?: number;
  instanceUuid?: string;
}

export class EchoServer {
  private constructor(readonly exchange: string, private readonly child: ChildProcess) {}

  /** `peers`: what the composed paths (echo.file, echo.qmp, echo.pg) work on; see bench/echo-server.ts. */
  static async start(amqpUrl: string, exchange: string, peers: EchoPeers = {}): Promise<EchoServer> {
    // Run the .ts file with the same loader this process runs under (tsx).
    const loader = process.execArgv.length > 0 ? process.execArgv : ['--import', 'tsx'];
    const child = spawn(process.execPath, [...loader, path.join(here, '..', 'echo-server.ts'), amqpUrl, exchange, String(ECHO_BUSY_MS), JSON.stringify(peers)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`echo server exited (${code}): ${stderr.trim()}`)));
    });
    await bounded(ready, 30_000, 'starting the AMQP echo server');
    return new EchoServer(exchange, child);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await bounded(exited, 5000, 'stopping the echo server').catch(() => this.child.kill('SIGKILL'));
  }
}

export class RawAmqpCaller {
  private readonly pending = new Map<string, { resolve: (v: Buffer) => void; reject: (err: Error) => void }>();
  private constructor(
    private readonly conn: ChannelModel,
    private readonly ch: Channel,
    private readonly replyQueue: string,
    private readonly exchange: string,
  ) {}

  static async open(amqpUrl: string, exchange: string): Promise<RawAmqpCaller> {
    const conn = await bounded(amqp.connect(amqpUrl, { noDelay: true }), 10_000, 'AMQP connect');
    const ch = await conn.createChannel();
    const q = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    const caller = new RawAmqpCaller(conn, ch, q.queue, exchange);
    await ch.consume(q.queue, (m) => {
      if (!m) return;
      const waiter = caller.pending.get(String(m.properties.correlationId));
      if (!waiter) return;
      caller.pending.delete(String(m.properties.correlationId));
      const failed = (m.properties.headers as Record<string, unknown> | undefined)?.[ECHO_FAILED_HEADER];
      if (failed !== undefined) waiter.reject(new Error(`echo server's peer step failed: ${String(failed)}`));
      else waiter.resolve(m.content);
    }, { noAck: true });
    return caller;
  }

  /** One request/reply on an echo routing key (`echo.raw`, ... `echo.pg`); rejects when a peer step failed. */
  call(routingKey: string, body: Buffer, timeoutMs = 10_000): Promise<Buffer> {
    const id = randomUUID();
    const reply = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.ch.publish(this.exchange, routingKey, body, { replyTo: this.replyQueue, correlationId: id });
    return bounded(reply, timeoutMs, 'AMQP echo').finally(() => this.pending.delete(id));
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}
