import { describe, expect, it } from 'vitest';
import { callsOf, stepReport } from '../../../bench/lib/steps.js';

// Two calls of one shape and one of another, with a stray event before the first delivery.
const events = [
  'amqp read', 0.0,
  'delivery>', 1.0, 'parse>', 1.01, 'parse<', 1.04, 'amqp write', 1.2,
  'delivery>', 2.0, 'parse>', 2.01, 'parse<', 2.06, 'amqp write', 2.3,
  'delivery>', 3.0, 'monitor write', 3.1, 'monitor read', 3.6, 'amqp write', 3.7,
  'delivery>', 4.0, 'parse>', 4.01,
];

describe('callsOf', () => {
  it('cuts the events into calls from a delivery to the write of its reply, dropping what is outside one', () => {
    const calls = callsOf(events);
    expect(calls.map((c) => c.map(([s]) => s))).toEqual([
      ['delivery>', 'parse>', 'parse<', 'amqp write'],
      ['delivery>', 'parse>', 'parse<', 'amqp write'],
      ['delivery>', 'monitor write', 'monitor read', 'amqp write'],
    ]);
  });
});

describe('stepReport', () => {
  it('gives each shape, the most frequent first, with the median of every gap and of the whole call in µs', () => {
    expect(stepReport(callsOf(events), 5)).toEqual([
      '2 calls, 250 µs median from delivery to the reply\'s write:',
      '      10 µs  delivery> → parse>',
      '      40 µs  parse> → parse<',
      '     200 µs  parse< → amqp write',
      '1 calls, 700 µs median from delivery to the reply\'s write:',
      '     100 µs  delivery> → monitor write',
      '     500 µs  monitor write → monitor read',
      '     100 µs  monitor read → amqp write',
    ]);
    expect(stepReport(callsOf(events), 1)).toHaveLength(4);
  });
});
