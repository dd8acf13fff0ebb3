import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, encodeEnvelope, EnvelopeError, pyJsonDumps } from '../../../src/rpc/envelope.js';

const reasonOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof EnvelopeError) return e.reason;
    throw e;
  }
  return 'none';
};
const env = (inner: string, version = '2.0'): Buffer => Buffer.from(JSON.stringify({ 'oslo.version': version, 'oslo.message': inner }));

describe('pyJsonDumps', () => {
  it('writes what Python json.dumps writes (separators, ASCII escapes)', () => {
    // Expected text produced by python3 -c 'import json; print(json.dumps(...))'
    const v = { a: 'é\u2028😀\x7f\x01\n\t"\\/', n: [1, 2.5, null, true, {}, []] };
    expect(pyJsonDumps(v)).toBe('{"a": "\\u00e9\\u2028\\ud83d\\ude00\\u007f\\u0001\\n\\t\\"\\\\/", "n": [1, 2.5, null, true, {}, []]}');
  });

  it('drops undefined members like JSON.stringify and honours toJSON', () => {
    expect(pyJsonDumps({ a: undefined, b: new Date(0) })).toBe('{"b": "1970-01-01T00:00:00.000Z"}');
    expect(pyJsonDumps([undefined, NaN])).toBe('[null, null]');
  });

  it('round-trips any JSON value through JSON.parse', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(JSON.parse(pyJsonDumps(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  it('refuses bigints and absurd nesting instead of overflowing the stack', () => {
    expect(() => pyJsonDumps({ a: 1n })).toThrow(TypeError);
    let deep: unknown = 1;
    for (let i = 0; i < 1000; i++) deep = [deep];
    expect(() => pyJsonDumps(deep)).toThrow(TypeError);
  });
});

describe('envelope', () => {
  it('encodes the inner message as a JSON string and decodes it back', () => {
    const msg = { method: 'm', args: { x: 'ü' } };
    const body = encodeEnvelope(msg);
    expect(body.toString()).toBe('{"oslo.version": "2.0", "oslo.message": "{\\"method\\": \\"m\\", \\"args\\": {\\"x\\": \\"\\\\u00fc\\"}}"}');
    expect(decodeEnvelope(body)).toEqual(msg);
  });

  it('accepts any 2.x version and a bare pre-envelope message, as oslo does', () => {
    expect(decodeEnvelope(env('{"a": 1}', '2.7'))).toEqual({ a: 1 });
    expect(decodeEnvelope(Buffer.from('{"method": "x", "args": {}}'))).toEqual({ method: 'x', args: {} });
  });

  it.each([
    ['too_large', Buffer.alloc(2048, 0x20), 1024],
    ['not_utf8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), undefined],
    ['not_json', Buffer.from('{"oslo.version": '), undefined],
    ['not_object', Buffer.from('[1, 2]'), undefined],
    ['bad_version', env('{}', '1.0'), undefined],
    ['bad_version', env('{}', '3.0'), undefined],
    ['bad_envelope', Buffer.from('{"oslo.version": "2.0"}'), undefined],
    ['bad_envelope', Buffer.from('{"oslo.version": "2.0", "oslo.message": {"a": 1}}'), undefined],
    ['not_json', env('{not json'), undefined],
    ['not_object', env('"a string"'), undefined],
  ] as const)('rejects a body that is %s', (reason, body, max) => {
    expect(reasonOf(() => decodeEnvelope(body, max ? { maxBytes: max } : {}))).toBe(reason);
  });
});
