// Command-line options of `npm run bench`: a full run by default (16 guests, 3 repeats, 4 s windows at
// 1, 8 and 32 calls in flight), `--quick` for a run under two minutes.

export interface BenchOptions {
  quick: boolean;
  guests: number;
  repeats: number;
  warmupMs: number;
  windowMs: number;
  concurrency: number[];
  /** Concurrency levels the floors are measured at. */
  floorConcurrency: number[];
  lifecyclePairs: number;
  bootBatch: number;
  profile: boolean;
  compareNova: boolean;
  /** Results file prefix under bench/results/ (bench → bench.json, bench.svg). */
  out: string;
  keepDatabase: boolean;
  /** Compute methods to load (default all three); narrowing it is for profiling one path. */
  methods: string[];
}

const HELP = `usage: npm run bench -- [options]
  --quick            short windows, 4 guests unless --guests is given (under two minutes)
  --guests N         guests novamon serves (1-100; default 16, quick 4)
  --repeats N        runs of every measurement; medians are reported (default 3, minimum 3)
  --window-ms MS     measured window per phase (default 4000, quick 500)
  --warmup-ms MS     unrecorded warm-up per phase (default 1000, quick 100)
  --lifecycle N      stop/cont pairs per repeat (default 10, quick 4)
  --boot-batch N     guests started in parallel (default 6)
  --profile          run novamon-compute under node --cpu-prof (profile in bench/results/profile/)
  --compare-nova     also run the Nova-stack anchor (../shared/anchor) and novamon's libvirt driver on
                     libvirt guests and print the ratios (16 guests unless --guests; see docs/bench.md)
  --out NAME         results file name prefix under bench/results/ (default bench, quick: bench-quick)
  --keep-database    do not drop the benchmark's PostgreSQL database afterwards
  --methods A,B      only these compute methods (e.g. with --profile, to see one call's path)
`;

export function parseArgs(argv: readonly string[]): BenchOptions {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${HELP}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (['quick', 'profile', 'compare-nova', 'keep-database'].includes(a.slice(2))) flags.set(a.slice(2), true);
    else {
      const v = argv[i + 1];
      if (v === undefined) throw new Error(`${a} needs a value`);
      flags.set(a.slice(2), v);
      i++;
    }
  }
  const known = new Set(['quick', 'guests', 'repeats', 'window-ms', 'warmup-ms', 'lifecycle', 'boot-batch', 'profile', 'compare-nova', 'out', 'keep-database', 'methods']);
  for (const k of flags.keys()) if (!known.has(k)) throw new Error(`unknown option --${k}\n${HELP}`);
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const v = flags.get(name);
    if (v === undefined || v === true) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  const quick = flags.get('quick') === true;
  const compareNovaFlag = flags.get('compare-nova') === true;
  const out = flags.get('out');
  return {
    quick,
    // The comparison is stated for 16 guests: fewer would let concurrent calls share a guest more often.
    guests: int('guests', quick && !compareNovaFlag ? 4 : 16, 1, 100),
    repeats: int('repeats', 3, 3, 50),
    warmupMs: int('warmup-ms', quick ? 100 : 1000, 0, 60_000),
    windowMs: int('window-ms', quick ? 500 : 4000, 100, 600_000),
    concurrency: [1, 8, 32],
    floorConcurrency: [1, 8, 32],
    lifecyclePairs: int('lifecycle', quick ? 4 : 10, 1, 1000),
    bootBatch: int('boot-batch', 6, 1, 32),
    profile: flags.get('profile') === true,
    compareNova: flags.get('compare-nova') === true,
    out: typeof out === 'string' ? out.replace(/[^A-Za-z0-9._-]/g, '_') : quick ? 'bench-quick' : 'bench',
    keepDatabase: flags.get('keep-database') === true,
    methods: methodList(flags.get('methods')),
  };
}

const ALL_METHODS = ['get_console_output', 'get_instance_diagnostics', 'get_vnc_console'];

function methodList(v: string | true | undefined): string[] {
  if (v === undefined || v === true) return ALL_METHODS;
  const list = v.split(',').map((m) => m.trim()).filter(Boolean);
  const bad = list.filter((m) => !ALL_METHODS.includes(m));
  if (bad.length || list.length === 0) throw new Error(`--methods takes a comma-separated subset of ${ALL_METHODS.join(', ')}`);
  return list;
}
