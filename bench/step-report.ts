// Reads what bench/step-trace.mjs wrote (novamon-steps-<pid>.json) and prints, for the most frequent
// shapes of a call (the order its steps came in), the median time from each step to the next and for the
// whole call, in microseconds, from the delivery to the write of its reply:
//
//   npx tsx bench/step-report.ts /tmp/novamon-steps-12345.json [--shapes 3]

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { callsOf, stepReport } from './lib/steps.js';

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { shapes: { type: 'string', default: '3' } } });
  const file = positionals[0];
  if (!file) throw new Error('usage: npx tsx bench/step-report.ts novamon-steps-<pid>.json [--shapes N]');
  const events = JSON.parse(readFileSync(file, 'utf8')) as unknown[];
  process.stdout.write(`${stepReport(callsOf(events), Number(values.shapes)).join('\n')}\n`);
}

main();
