import type { Channel, ConsumeMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import { publishReply, replyFragment, type Delivery, type Session } from '../../../src/rpc/server-session.js';

/** Records, in order, what the server does on its channel (the broker handles one channel's methods in that order). */
function recordingSession(opts: { publishThrows?: boolean } = {}) {
  const ops: string[] = [];
  const ch = {
    publish: (exchange: string, queue: string, body: Buffer) => {
      if (opts.publishThrows) throw new Error('channel closed');
      ops.push(`publish ${exchange || '(default)'} ${queue} ${JSON.parse(JSON.parse(body.toString())['oslo.message'])._msg_id}`);
      return true;
    },
    ack: () => void ops.push('ack'),
    nack: (_m: unknown, _all: boolean, requeue: boolean) => void ops.push(requeue ? 'requeue' : 'reject'),
  } as unknown as Channel;
  const session: Session = { ch, consumerTags: [], alive: true };
  const delivery: Delivery = { session, msg: {} as ConsumeMessage, settled: false, t0: 0, method: 'get_console_output', kind: 'call' };
  return { ops, session, delivery };
}

describe('a call is answered on its own channel', () => {
  it('publishes the reply and then acks the call, once, with no other write between them', () => {
    const { ops, delivery } = recordingSession();
    publishReply(delivery, { msgId: 'm1', replyQ: 'reply_q1' }, replyFragment('ok', null), silentLogger());
    publishReply(delivery, { msgId: 'm1', replyQ: 'reply_q1' }, replyFragment('ok', null), silentLogger());
    // The second publish is a re-send (as for a duplicate); the call is still acked only once.
    expect(ops).toEqual(['publish (default) reply_q1 m1', 'ack', 'publish (default) reply_q1 m1']);
  });

  it('requeues the call when its reply cannot be published, so its redelivery answers it', () => {
    const { ops, delivery } = recordingSession({ publishThrows: true });
    publishReply(delivery, { msgId: 'm2', replyQ: 'reply_q2' }, replyFragment(null, 'boom'), silentLogger());
    expect(ops).toEqual(['requeue']);
    expect(delivery.settled).toBe(true);
  });

  it('leaves the call to the broker when the session is gone: the closed channel requeues it', () => {
    const { ops, session, delivery } = recordingSession();
    session.alive = false;
    publishReply(delivery, { msgId: 'm3', replyQ: 'reply_q3' }, replyFragment('ok', null), silentLogger());
    expect(ops).toEqual([]);
  });
});
