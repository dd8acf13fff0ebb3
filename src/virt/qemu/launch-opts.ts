// How QEMU splits an option's value into key=value pairs, reproduced so the relaunch rules see exactly
// what QEMU will see: QemuOpts' comma rules (",," is a literal comma, a bare first word is the option's
// implied key, a later bare word is a flag) and, for the options that take JSON, the object flattened to
// dotted keys as QEMU's block layer and QOM flatten it.

export type Pair = readonly [key: string, value: string];

/** QEMU's get_opt_value: up to the next single comma, ",," standing for ",". Returns the value and the rest. */
function optValue(s: string, from: number): [string, number] {
  let out = '';
  let i = from;
  while (i < s.length) {
    const c = s[i];
    if (c === ',') {
      if (s[i + 1] !== ',') break;
      i += 1;
    }
    out += c;
    i += 1;
  }
  return [out, i];
}

/**
 * The pairs of a QemuOpts/keyval string, in order, as util/qemu-option.c's get_opt_name_value splits it.
 * `impliedKey` names a bare first word (`-netdev user,...` → type=user); without one it is a flag.
 */
export function parseOpts(value: string, impliedKey?: string): Pair[] {
  const pairs: Pair[] = [];
  let p = 0;
  let first = true;
  while (p < value.length) {
    const rest = value.slice(p);
    const stop = rest.search(/[=,]/);
    const len = stop === -1 ? rest.length : stop;
    let next: number;
    if (rest[len] !== '=') {
      if (first && impliedKey !== undefined) {
        const [v, end] = optValue(value, p);
        pairs.push([impliedKey, v]);
        next = end;
      } else {
        const name = rest.slice(0, len);
        pairs.push(name.startsWith('no') ? [name.slice(2), 'off'] : [name, 'on']);
        next = p + len;
      }
    } else {
      const [v, end] = optValue(value, p + len + 1);
      pairs.push([rest.slice(0, len), v]);
      next = end;
    }
    p = value[next] === ',' ? next + 1 : next;
    first = false;
  }
  return pairs;
}

function flatten(prefix: string, v: unknown, out: Pair[]): void {
  if (v !== null && typeof v === 'object') {
    for (const [k, inner] of Object.entries(v as Record<string, unknown>)) flatten(prefix === '' ? k : `${prefix}.${k}`, inner, out);
    return;
  }
  out.push([prefix, v === null ? 'null' : String(v)]);
}

/**
 * The pairs of an option that accepts JSON (`-device {"driver":...}`, `-blockdev`, `-object`, `-netdev`,
 * `-audiodev`): JSON objects flattened (`{"file":{"filename":"x"}}` → file.filename=x), else QemuOpts.
 * Invalid JSON is returned as an error string, since QEMU would refuse it too.
 */
export function parseJsonOrOpts(value: string, impliedKey?: string): Pair[] | string {
  if (!value.trimStart().startsWith('{')) return parseOpts(value, impliedKey);
  try {
    const obj: unknown = JSON.parse(value);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return 'is not a JSON object';
    const out: Pair[] = [];
    flatten('', obj, out);
    return out;
  } catch {
    return 'is not valid JSON';
  }
}

/** The last dotted component of a key: `file.filename` → `filename`. */
export function leaf(key: string): string {
  const i = key.lastIndexOf('.');
  return i === -1 ? key : key.slice(i + 1);
}

/** The value of the first pair named `key`, or undefined. */
export function get(pairs: readonly Pair[], key: string): string | undefined {
  return pairs.find(([k]) => k === key)?.[1];
}
