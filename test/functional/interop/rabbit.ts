// Helpers for the rpc functional tests: unique names, a raw amqplib connection for publishing hand-made
// bodies and reading raw replies, and cleanup of what a test declared. Real RabbitMQ on 127.0.0.1:5672.
import { randomBytes } from 'node:crypto';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';

export const RABBIT_URL = process.env['NOVAMON_TEST_RABBIT_URL'] ?? 'rabbit://guest:guest@127.0.0.1:5672/';
export const AMQP_URL = RABBIT_URL.replace(/^rabbit:/, 'amqp:');

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export function hex(): string {
  return randomBytes(16).toString('hex');
}

export class RawRabbit {
  private constructor(
    readonly conn: ChannelModel,
    readonly ch: Channel,
  ) {}

  static async open(): Promise<RawRabbit> {
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    return new RawRabbit(conn, ch);
  }

  /** An exclusive queue collecting every message delivered to it. */
  async collector(name = uniqueName('reply_test')): Promise<{ name: string; messages: ConsumeMessage[]; waitFor: (n: number, ms?: number) => Promise<ConsumeMessage[]> }> {
    await this.ch.assertQueue(name, { exclusive: true, autoDelete: true });
    const messages: ConsumeMessage[] = [];
    await this.ch.consume(name, (m) => m && messages.push(m), { noAck: true });
    const waitFor = async (n: number, ms = 5000): Promise<ConsumeMessage[]> => {
      const end = Date.now() + ms;
      while (messages.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      return messages;
    };
    return { name, messages, waitFor };
  }

  publish(exchange: string, routingKey: string, body: Buffer | string, expiration?: string): void {
    this.ch.publish(exchange, routingKey, Buffer.isBuffer(body) ? body : Buffer.from(body), {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 2,
      priority: 0,
      headers: {},
      ...(expiration ? { expiration } : {}),
    });
  }

  async deleteQueues(...names: string[]): Promise<void> {
    for (const n of names) await this.ch.deleteQueue(n).catch(() => undefined);
  }

  async deleteExchanges(...names: string[]): Promise<void> {
    for (const n of names) await this.ch.deleteExchange(n).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
