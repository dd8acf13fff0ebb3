import { describe, expect, it } from 'vitest';
import { MalformedMessage } from '../../../src/rpc/failure.js';
import { encodeEnvelope } from '../../../src/rpc/envelope.js';
import { parseRequest, replyTargetOf, sniffReplyTarget } from '../../../src/rpc/message.js';

const call = { method: 'm', args: { a: 1 }, version: '6.0', _msg_id: 'id1', _reply_q: 'reply_x', _timeout: null, _unique_id: 'u1', _context_user_id: 'u' };

describe('parseRequest', () => {
  it('reads a call and a cast', () => {
    expect(parseRequest(call)).toMatchObject({ method: 'm', args: { a: 1 }, version: '6.0', namespace: null, reply: { msgId: 'id1', replyQ: 'reply_x' }, uniqueId: 'u1' });
    const { _msg_id: _a, _reply_q: _b, _timeout: _c, ...cast } = call;
    expect(parseRequest(cast).reply).toBeNull();
    expect(parseRequest({ method: 'm', args: {} })).toMatchObject({ version: '1.0', uniqueId: null });
  });

  it.each([
    [{ ...call, method: undefined }],
    [{ ...call, method: 5 }],
    [{ ...call, method: '' }],
    [{ ...call, method: 'x'.repeat(300) }],
    [{ method: 'm', version: '6.0' }],
    [{ ...call, args: [] }],
    [{ ...call, args: null }],
    [{ ...call, args: 'x' }],
    [{ ...call, version: 6 }],
    [{ ...call, namespace: 1 }],
    [{ ...call, _reply_q: 5 }],
    [{ ...call, _msg_id: undefined }],
    [{ ...call, _unique_id: {} }],
  ])('rejects %j as malformed', (msg) => {
    expect(() => parseRequest(msg as Record<string, unknown>)).toThrow(MalformedMessage);
  });

  it('finds the reply target even in a malformed call, and only a usable one', () => {
    expect(replyTargetOf({ ...call, args: 'bad' })).toEqual({ msgId: 'id1', replyQ: 'reply_x' });
    expect(replyTargetOf({ ...call, _reply_q: 'x'.repeat(256) })).toBeNull();
    expect(replyTargetOf({ _reply_q: 'r' })).toBeNull();
  });
});

describe('sniffReplyTarget', () => {
  it('finds the reply target in an enveloped body without parsing it', () => {
    const body = encodeEnvelope({ method: 'm', args: { pad: 'x'.repeat(1000) }, _msg_id: 'abc123', _reply_q: 'reply_0f' });
    expect(sniffReplyTarget(body)).toEqual({ msgId: 'abc123', replyQ: 'reply_0f' });
    expect(sniffReplyTarget(Buffer.concat([body.subarray(0, body.length - 3), Buffer.from([0xff])]))).toEqual({ msgId: 'abc123', replyQ: 'reply_0f' });
  });

  it('ignores ids with characters oslo never uses', () => {
    expect(sniffReplyTarget(encodeEnvelope({ _msg_id: 'a b', _reply_q: 'reply_0f' }))).toBeNull();
    expect(sniffReplyTarget(Buffer.from('garbage'))).toBeNull();
  });
});
