// Summary of novamon-compute's V8 CPU profile (node --cpu-prof, `npm run bench -- --profile`): self time
// grouped by where the code lives (our src/ folders, each npm package, Node internals, GC) and the top
// functions, so "where does our time go" has an answer with file names in it.

import { readFile } from 'node:fs/promises';
import path from 'node:path';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  files: string[];
  /** Sampled time, idle excluded, in ms. */
  totalMs: number;
  idleMs: number;
  /** Self time by where the sampled frame's code lives. */
  byCategory: { name: string; ms: number; percent: number }[];
  /**
   * Time charged to the nearest caller that is novamon's or an npm package's code (native and node:
   * frames are charged to whoever called them): which of our modules and dependencies cost the CPU.
   */
  byOwner: { name: string; ms: number; percent: number }[];
  topFunctions: { name: string; location: string; ms: number; percent: number }[];
  /** Time charged to the deepest novamon function on the stack (its own time plus native/library work under it). */
  topNovamonFunctions: { name: string; location: string; ms: number; percent: number }[];
}

function category(url: string, fn: string, repoRoot: string): string {
  if (!url) {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(program)') return 'V8/native (program)';
    if (fn === '(idle)') return 'idle';
    return `native ${fn}`;
  }
  const p = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p);
  if (nm) return `npm ${nm[1]}`;
  if (p.startsWith('node:')) return `node ${p.slice(5).split('/')[0]}`;
  const rel = path.relative(repoRoot, p);
  const src = /^dist\/src\/([^/]+)(\/[^/]+)?/.exec(rel);
  if (src) return `novamon src/${src[1]}${src[2] && src[2].endsWith('.js') ? '' : (src[2] ?? '')}`;
  return rel.startsWith('..') ? p : rel;
}

function location(url: string, line: number, repoRoot: string): string {
  if (!url) return '';
  const p = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const rel = p.startsWith('/') ? path.relative(repoRoot, p) : p;
  return `${rel.replace(/^node_modules\//, '')}:${line + 1}`;
}

export async function summarizeProfiles(files: string[], repoRoot: string): Promise<ProfileSummary | null> {
  if (files.length === 0) return null;
  const cat = new Map<string, number>();
  const owners = new Map<string, number>();
  const fns = new Map<string, { name: string; location: string; ms: number }>();
  const ours = new Map<string, { name: string; location: string; ms: number }>();
  let idle = 0;
  let total = 0;
  for (const file of files) {
    const prof = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const catOf = (n: CpuProfileNode) => category(n.callFrame.url, n.callFrame.functionName, repoRoot);
    for (let i = 0; i < prof.samples.length; i++) {
      const node = byId.get(prof.samples[i] as number);
      if (!node) continue;
      const ms = (prof.timeDeltas[i + 1] ?? prof.timeDeltas[i] ?? 0) / 1000;
      const { functionName, url, lineNumber } = node.callFrame;
      const c = category(url, functionName, repoRoot);
      if (c === 'idle') {
        idle += ms;
        continue;
      }
      total += ms;
      cat.set(c, (cat.get(c) ?? 0) + ms);
      const loc = location(url, lineNumber, repoRoot);
      const key = `${functionName}@${loc}`;
      const e = fns.get(key) ?? { name: functionName || '(anonymous)', location: loc, ms: 0 };
      e.ms += ms;
      fns.set(key, e);
      let owner: string | null = null;
      let our: CpuProfileNode | null = null;
      for (let cur: CpuProfileNode | undefined = node; cur; cur = byId.get(parent.get(cur.id) ?? -1)) {
        const k = catOf(cur);
        if (owner === null && (k.startsWith('novamon') || k.startsWith('npm'))) owner = k;
        if (k.startsWith('novamon')) {
          our = cur;
          break;
        }
      }
      owners.set(owner ?? c, (owners.get(owner ?? c) ?? 0) + ms);
      if (our) {
        const oloc = location(our.callFrame.url, our.callFrame.lineNumber, repoRoot);
        const okey = `${our.callFrame.functionName}@${oloc}`;
        const o = ours.get(okey) ?? { name: our.callFrame.functionName || '(anonymous)', location: oloc, ms: 0 };
        o.ms += ms;
        ours.set(okey, o);
      }
    }
  }
  const pct = (ms: number) => Math.round((ms / total) * 1000) / 10;
  return {
    files: files.map((f) => path.relative(repoRoot, f)),
    totalMs: Math.round(total),
    idleMs: Math.round(idle),
    byCategory: [...cat].map(([name, ms]) => ({ name, ms: Math.round(ms), percent: pct(ms) })).sort((a, b) => b.ms - a.ms).slice(0, 25),
    byOwner: [...owners].map(([name, ms]) => ({ name, ms: Math.round(ms), percent: pct(ms) })).sort((a, b) => b.ms - a.ms).slice(0, 25),
    topFunctions: [...fns.values()].map((e) => ({ ...e, ms: Math.round(e.ms), percent: pct(e.ms) })).sort((a, b) => b.ms - a.ms).slice(0, 30),
    topNovamonFunctions: [...ours.values()].map((e) => ({ ...e, ms: Math.round(e.ms), percent: pct(e.ms) })).sort((a, b) => b.ms - a.ms).slice(0, 30),
  };
}
