// How the RPC server settles a call, on the real broker: the reply is published on the channel the call
// came in on and the call is acked there right after, once; a reply that cannot be published leaves the
// call to be redelivered. The channel's publish and ack are watched (and still do their work) so the order
// is checked as well as what RabbitMQ ends up holding.
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging.js';
import { decodeEnvelope } from '../../src/rpc/envelope.js';
import { publishReply, replyFragment, type Delivery } from '../../src/rpc/server-session.js';
import { AMQP_URL, uniqueName } from './interop/rabbit.js';

let conn: ChannelModel;
let admin: Channel;

beforeAll(async () => {
  conn = await amqp.connect(AMQP_URL);
  admin = await conn.createChannel();
});
afterAll(async () => {
  await conn?.close();
});

/** A call taken from a real queue on its own channel, whose publish/ack/nack are recorded as they run. */
async function takeCall() {
  const callQ = uniqueName('reply-ack-call');
  const replyQ = uniqueName('reply-ack-reply');
  await admin.assertQueue(callQ, { durable: false, autoDelete: false });
  await admin.assertQueue(replyQ, { durable: false, autoDelete: false });
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  const ops: string[] = [];
  const publish = ch.publish.bind(ch);
  const ack = ch.ack.bind(ch);
  const nack = ch.nack.bind(ch);
  ch.publish = (exchange, key, body, options) => {
    ops.push(`publish ${key}`);
    return publish(exchange, key, body, options);
  };
  ch.ack = (m, allUpTo) => {
    ops.push('ack');
    ack(m, allUpTo);
  };
  ch.nack = (m, allUpTo, requeue) => {
    ops.push(requeue ? 'requeue' : 'reject');
    nack(m, allUpTo, requeue);
  };
  admin.sendToQueue(callQ, Buffer.from('{}'));
  const msg = await new Promise<ConsumeMessage>((resolve) => void ch.consume(callQ, (m) => m && resolve(m), { noAck: false }));
  const delivery: Delivery = { session: { ch, consumerTags: [], alive: true }, msg, settled: false, t0: 0, method: 'get_console_output', kind: 'call' };
  const cleanup = async () => {
    await admin.deleteQueue(callQ);
    await admin.deleteQueue(replyQ);
  };
  return { ch, ops, delivery, callQ, replyQ, cleanup };
}

/** The _msg_id of every reply waiting in `queue`, taken off it. */
async function repliesIn(queue: string): Promise<string[]> {
  const ids: string[] = [];
  for (let m = await admin.get(queue, { noAck: true }); m; m = await admin.get(queue, { noAck: true })) {
    ids.push(String(decodeEnvelope(m.content)['_msg_id']));
  }
  return ids;
}

const waiting = async (queue: string): Promise<number> => (await admin.checkQueue(queue)).messageCount;

describe("a call is answered and settled on its own channel (real RabbitMQ)", () => {
  it('publishes the reply and then acks the call, once, with no other write between them', async () => {
    const t = await takeCall();
    publishReply(t.delivery, { msgId: 'm1', replyQ: t.replyQ }, replyFragment('ok', null), silentLogger());
    // A re-send (as for a duplicate) publishes again but never acks twice: a second ack of one delivery
    // would make the broker close the channel.
    publishReply(t.delivery, { msgId: 'm1', replyQ: t.replyQ }, replyFragment('ok', null), silentLogger());
    expect(t.ops).toEqual([`publish ${t.replyQ}`, 'ack', `publish ${t.replyQ}`]);
    await t.ch.checkQueue(t.callQ); // a round trip on the channel: it is still open
    await t.ch.close();
    expect(await repliesIn(t.replyQ)).toEqual(['m1', 'm1']);
    expect(await waiting(t.callQ)).toBe(0); // acked: closing the channel gave nothing back
    await t.cleanup();
  });

  it('requeues the call when its reply cannot be published, so its redelivery answers it', async () => {
    const t = await takeCall();
    await t.ch.close(); // closed under the server before the handler finished
    publishReply(t.delivery, { msgId: 'm2', replyQ: t.replyQ }, replyFragment(null, 'boom'), silentLogger());
    expect(t.delivery.settled).toBe(true);
    expect(t.ops).toEqual([`publish ${t.replyQ}`, 'requeue']);
    expect(await repliesIn(t.replyQ)).toEqual([]);
    expect(await waiting(t.callQ)).toBe(1);
    await t.cleanup();
  });

  it('leaves the call to the broker when the session is gone: the closed channel requeues it', async () => {
    const t = await takeCall();
    t.delivery.session.alive = false;
    publishReply(t.delivery, { msgId: 'm3', replyQ: t.replyQ }, replyFragment('ok', null), silentLogger());
    expect(t.ops).toEqual([]);
    await t.ch.close();
    expect(await repliesIn(t.replyQ)).toEqual([]);
    expect(await waiting(t.callQ)).toBe(1);
    await t.cleanup();
  });
});
