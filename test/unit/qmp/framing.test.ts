// The line splitter and parser: however the byte stream is cut, the same messages come out.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QmpLineSplitter, QmpProtocolError, parseQmpLine } from '../../../src/qmp/framing.js';

function collect(max = 1 << 20): { splitter: QmpLineSplitter; lines: string[] } {
  const lines: string[] = [];
  const splitter = new QmpLineSplitter(max, (l) => lines.push(l));
  return { splitter, lines };
}

describe('QmpLineSplitter', () => {
  it('yields the same messages however the stream is chunked', () => {
    const message = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 12 }), (messages, cuts) => {
        const text = messages.map((m) => JSON.stringify(m) + '\n').join('');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const { splitter, lines } = collect();
        let prev = 0;
        for (const p of [...points, text.length]) {
          splitter.push(text.slice(prev, p));
          prev = p;
        }
        expect(lines.map(parseQmpLine)).toEqual(messages);
        expect(splitter.buffered).toBe(0);
      }),
    );
  });

  it('skips blank lines and tolerates CRLF', () => {
    const { splitter, lines } = collect();
    splitter.push('\n  \r\n{"a":1}\r\n\n{"b":2}\n');
    expect(lines.map(parseQmpLine)).toEqual([{ a: 1 }, { b: 2 }]);
  });

  it('keeps an unfinished line until its newline', () => {
    const { splitter, lines } = collect();
    splitter.push('{"a":');
    expect(lines).toEqual([]);
    expect(splitter.buffered).toBe(5);
    splitter.push('1}\n{"b"');
    expect(lines).toEqual(['{"a":1}']);
  });

  it('refuses a line over the cap, complete or not', () => {
    expect(() => collect(10).splitter.push('{"a":"0123456789"}\n')).toThrow(QmpProtocolError);
    const { splitter } = collect(10);
    splitter.push('{"a":');
    expect(() => splitter.push('"0123456789')).toThrow(/exceeds the 10 limit/);
    expect(splitter.buffered).toBe(0);
  });

  it('lets the handler be swapped between two lines of one chunk', () => {
    const first: string[] = [];
    const second: string[] = [];
    const splitter = new QmpLineSplitter(100, (l) => {
      first.push(l);
      splitter.onLine = (m) => second.push(m);
    });
    splitter.push('1\n2\n3\n');
    expect(first).toEqual(['1']);
    expect(second).toEqual(['2', '3']);
  });
});

describe('parseQmpLine', () => {
  it('accepts objects only', () => {
    expect(parseQmpLine('{"return": {}, "id": 1}')).toEqual({ return: {}, id: 1 });
    expect(() => parseQmpLine('garbage')).toThrow(QmpProtocolError);
    expect(() => parseQmpLine('[]')).toThrow(/not a JSON object/);
    expect(() => parseQmpLine('null')).toThrow(/not a JSON object/);
    expect(() => parseQmpLine('42')).toThrow(/not a JSON object/);
  });
});
