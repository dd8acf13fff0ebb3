// Our encoders against the real oslo.messaging captures: same bytes for calls, replies and failures.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InstanceNotFound } from '../../../src/exception.js';
import { NoSuchMethod, UnsupportedVersion } from '../../../src/rpc/dispatcher.js';
import { decodeEnvelope, encodeEnvelope, encodeEnvelopeText, pyJsonDumps } from '../../../src/rpc/envelope.js';
import { serializeFailure } from '../../../src/rpc/failure.js';
import { replyFragment, replyMessageText } from '../../../src/rpc/server.js';

interface Sample {
  what: string;
  body: { 'oslo.version': string; 'oslo.message': string };
  'oslo.message decoded': Record<string, unknown>;
}
const samples = JSON.parse(readFileSync('/work/shared/specs/samples/oslo-rabbit-wire.json', 'utf8')) as Sample[];
const sample = (what: string): Sample => {
  const s = samples.find((x) => x.what === what);
  if (!s) throw new Error(`no sample ${what}`);
  return s;
};
const UUID = '11111111-2222-3333-4444-555555555555';

describe('wire samples', () => {
  it('serialises every captured message to the same oslo.message text and body', () => {
    for (const s of samples) {
      expect(pyJsonDumps(s['oslo.message decoded'])).toBe(s.body['oslo.message']);
      expect(encodeEnvelope(s['oslo.message decoded']).toString('utf8')).toBe(pyJsonDumps(s.body));
    }
  });

  it('decodes every captured body to its decoded message', () => {
    for (const s of samples) {
      expect(decodeEnvelope(Buffer.from(JSON.stringify(s.body)))).toEqual(s['oslo.message decoded']);
    }
  });

  it('builds the success reply byte for byte', () => {
    const s = sample('reply:ok');
    const d = s['oslo.message decoded'];
    const text = replyMessageText(replyFragment('line1\nline2\n', null), d['_msg_id'] as string, d['_unique_id'] as string);
    expect(text).toBe(s.body['oslo.message']);
    expect(encodeEnvelopeText(text).toString()).toBe(pyJsonDumps(s.body));
  });

  it.each([
    ['failure:InstanceNotFound', () => new InstanceNotFound(UUID)],
    ['failure:UnsupportedVersion', () => new UnsupportedVersion('7.0', 'get_console_output')],
    ['failure:NoSuchMethod', () => new NoSuchMethod('no_such_method')],
  ])('builds %s exactly as oslo does', (what, make) => {
    const s = sample(what);
    const d = s['oslo.message decoded'];
    expect(serializeFailure(make())).toBe(d['failure']);
    const text = replyMessageText(replyFragment(null, serializeFailure(make())), d['_msg_id'] as string, d['_unique_id'] as string);
    expect(text).toBe(s.body['oslo.message']);
  });
});
