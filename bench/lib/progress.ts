// Progress on stderr while the benchmark runs: one line per step with the elapsed time, so a long run shows
// where it is and a stuck one shows where it stopped. stdout is kept for the final table.

const started = performance.now();

export function progress(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${message}\n`);
}
