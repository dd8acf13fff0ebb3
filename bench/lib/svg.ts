// The results chart as hand-written SVG (no chart library): left, each call's p50 at 1 in flight next to
// the stacked floors on its path; right, calls/s at 1, 8 and 32 in flight against the floors' ceiling.
// Small and deterministic, so it diffs reasonably when committed.

import { FLOOR_SUM, machineLine, type Report } from './report.js';

const W = 960;
const H = 560;
const COLORS: Record<string, string> = {
  novamon: '#3b6ea8',
  amqp: '#e0a03b',
  qmp: '#6aa84f',
  qmp_diag_batch: '#93c47d',
  pg_insert: '#a64d79',
  file_tail: '#8e7cc3',
  ceiling: '#cc0000',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const n = (v: number) => (Number.isFinite(v) ? Math.round(v * 10) / 10 : 0);
const short = (m: string) => m.replace(/^get_/, '').replace('instance_diagnostics', 'diagnostics');

function niceMax(v: number): number {
  if (!Number.isFinite(v) || v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * p >= v) return k * p;
  return 10 * p;
}

function axis(out: string[], x: number, y: number, h: number, max: number, unit: string): void {
  for (let i = 0; i <= 4; i++) {
    const yy = y + h - (h * i) / 4;
    out.push(`<line x1="${x}" y1="${n(yy)}" x2="${x + 400}" y2="${n(yy)}" stroke="#ddd"/>`);
    out.push(`<text x="${x - 6}" y="${n(yy + 4)}" text-anchor="end">${esc(String(Math.round(((max * i) / 4) * 100) / 100))}</text>`);
  }
  out.push(`<text x="${x - 40}" y="${y - 12}">${esc(unit)}</text>`);
}

export function renderSvg(r: Report): string {
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="20" y="24" font-size="15" font-weight="bold">novamon-compute: end-to-end cost of a compute call vs. the floors</text>`);
  out.push(`<text x="20" y="42" fill="#555">${esc(machineLine(r))}</text>`);

  // ---- left: p50 @1 vs stacked floor sum ----
  const methods = Object.keys(FLOOR_SUM);
  const lx = 70;
  const ly = 90;
  const lh = 340;
  const at1 = (m: string) => r.calls.find((c) => c.method === m && c.inFlight === 1);
  const floorP50 = (f: string) => r.floors[f]?.['1']?.p50 ?? 0;
  const lmax = niceMax(Math.max(...methods.map((m) => Math.max(at1(m)?.p50 ?? 0, r.floorSums[m]?.p50 ?? 0))));
  out.push(`<text x="${lx}" y="${ly - 28}" font-weight="bold">p50 latency at 1 in flight (ms): novamon vs. floors on its path</text>`);
  axis(out, lx, ly, lh, lmax, 'ms');
  const group = 400 / methods.length;
  methods.forEach((m, i) => {
    const gx = lx + i * group + 14;
    const bw = 44;
    const row = at1(m);
    const v = row?.p50 ?? 0;
    const bh = (lh * v) / lmax;
    out.push(`<rect x="${gx}" y="${n(ly + lh - bh)}" width="${bw}" height="${n(bh)}" fill="${COLORS['novamon']}"><title>${esc(`${m}: p50 ${v} ms`)}</title></rect>`);
    out.push(`<text x="${gx + bw / 2}" y="${n(ly + lh - bh - 4)}" text-anchor="middle">${v.toFixed(2)}</text>`);
    let y = ly + lh;
    for (const part of FLOOR_SUM[m] ?? []) {
      const pv = floorP50(part.floor) * part.times;
      const ph = (lh * pv) / lmax;
      y -= ph;
      out.push(`<rect x="${gx + bw + 6}" y="${n(y)}" width="${bw}" height="${n(ph)}" fill="${COLORS[part.floor] ?? '#999'}"><title>${esc(`${part.times}× ${part.floor}: ${pv.toFixed(3)} ms`)}</title></rect>`);
    }
    const fs = r.floorSums[m]?.p50 ?? 0;
    out.push(`<text x="${gx + bw * 1.5 + 6}" y="${n(ly + lh - (lh * fs) / lmax - 4)}" text-anchor="middle">${fs.toFixed(2)}</text>`);
    out.push(`<text x="${gx + bw + 3}" y="${ly + lh + 16}" text-anchor="middle">${esc(short(m))}</text>`);
    out.push(`<text x="${gx + bw + 3}" y="${ly + lh + 30}" text-anchor="middle" fill="#555">${Number.isFinite(row?.ratioP50 ?? NaN) ? `${(row?.ratioP50 ?? 0).toFixed(2)}× floor` : ''}</text>`);
  });
  const legend = [['novamon', 'novamon p50'], ['amqp', 'AMQP round trip'], ['qmp', 'QMP command'], ['qmp_diag_batch', 'QMP diag batch'], ['pg_insert', 'INSERT'], ['file_tail', 'console file read']];
  legend.forEach(([k, label], i) => {
    const x = lx + (i % 3) * 140;
    const y = ly + lh + 50 + Math.floor(i / 3) * 16;
    out.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${COLORS[k as string]}"/><text x="${x + 14}" y="${y}">${esc(label as string)}</text>`);
  });

  // ---- right: throughput by in-flight vs ceiling ----
  const rx = 530;
  const concs = r.options.concurrency;
  const rmax = niceMax(Math.max(...r.calls.map((c) => Math.max(c.callsPerSec, Number.isFinite(c.ceilingCallsPerSec) ? c.ceilingCallsPerSec : 0))));
  out.push(`<text x="${rx}" y="${ly - 28}" font-weight="bold">calls/s at ${concs.join(', ')} in flight; red tick = floors' ceiling</text>`);
  axis(out, rx, ly, lh, rmax, 'calls/s');
  methods.forEach((m, i) => {
    const gx = rx + i * group + 10;
    const bw = (group - 30) / concs.length;
    concs.forEach((c, j) => {
      const row = r.calls.find((x) => x.method === m && x.inFlight === c);
      const v = row?.callsPerSec ?? 0;
      const bh = (lh * v) / rmax;
      const x = gx + j * bw;
      const shade = ['#9fc5e8', '#5b8fc7', '#1f4e79'][j] ?? COLORS['novamon'];
      out.push(`<rect x="${n(x)}" y="${n(ly + lh - bh)}" width="${n(bw - 3)}" height="${n(bh)}" fill="${shade}"><title>${esc(`${m} @${c}: ${v.toFixed(0)} calls/s, p50 ${row?.p50} ms`)}</title></rect>`);
      out.push(`<text x="${n(x + (bw - 3) / 2)}" y="${n(ly + lh - bh - 4)}" text-anchor="middle" font-size="9">${v.toFixed(0)}</text>`);
      const ceil = row?.ceilingCallsPerSec ?? NaN;
      if (Number.isFinite(ceil)) {
        const cy = ly + lh - (lh * ceil) / rmax;
        out.push(`<line x1="${n(x - 1)}" y1="${n(cy)}" x2="${n(x + bw - 2)}" y2="${n(cy)}" stroke="${COLORS['ceiling']}" stroke-width="2"><title>${esc(`floor ceiling ${ceil.toFixed(0)} calls/s`)}</title></line>`);
      }
      out.push(`<text x="${n(x + (bw - 3) / 2)}" y="${ly + lh + 30}" text-anchor="middle" fill="#555" font-size="9">@${c}</text>`);
    });
    out.push(`<text x="${n(gx + (bw * concs.length) / 2)}" y="${ly + lh + 16}" text-anchor="middle">${esc(short(m))}</text>`);
  });

  const l = r.lifecycle;
  const s = r.service;
  out.push(`<text x="20" y="${H - 36}">Lifecycle stop → row PAUSED: ≈${l.stopEventToRowEstimate.toFixed(1)} ms (upper bound send→row ${l.stopSendToRowP50.toFixed(1)} ms).   RSS: ${(s.rssAllConnectedKiB / 1024).toFixed(1)} MiB with ${s.qmpConnections ?? '?'} QMP connections, peak ${(s.hwmKiB / 1024).toFixed(1)} MiB.</text>`);
  out.push(`<text x="20" y="${H - 18}" fill="#555">${esc(`Medians of ${r.options.repeats} repeats; ${r.startedAt}. How to read: docs/bench.md`)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
