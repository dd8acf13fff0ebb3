// Instance names: formatting from Nova's instance_name_template, and the validation every name passes
// before it becomes a file path. A name that does not have the template's shape, or that would resolve
// outside instances_path, is refused before any file is touched.

import path from 'node:path';
import { InvalidInstanceName } from '../exception.js';

export const MAX_INSTANCE_NAME_LENGTH = 64;

const conversion = /%(0?)(\d*)([xXd])/;

export class InstanceNameTemplate {
  private readonly prefix: string;
  private readonly suffix: string;
  private readonly zeroPad: boolean;
  private readonly width: number;
  private readonly radix: 'x' | 'X' | 'd';
  private readonly pattern: RegExp;

  constructor(readonly template: string) {
    const m = conversion.exec(template);
    if (!m || m.index === undefined) throw new Error(`instance_name_template ${template} has no %x, %X or %d conversion`);
    this.prefix = template.slice(0, m.index);
    this.suffix = template.slice(m.index + m[0].length);
    this.zeroPad = m[1] === '0';
    this.width = m[2] ? Number(m[2]) : 0;
    this.radix = m[3] as 'x' | 'X' | 'd';
    const digits = this.radix === 'd' ? '[0-9]' : this.radix === 'x' ? '[0-9a-f]' : '[0-9A-F]';
    const count = this.zeroPad && this.width > 0 ? `{${this.width},}` : '+';
    this.pattern = new RegExp(`^${escapeRegExp(this.prefix)}${digits}${count}${escapeRegExp(this.suffix)}$`);
  }

  /** Nova's `CONF.instance_name_template % instance.id`. */
  format(id: number): string {
    if (!Number.isSafeInteger(id) || id < 0) throw new InvalidInstanceName(String(id), 'instance id must be a non-negative integer');
    let digits = this.radix === 'd' ? id.toString(10) : id.toString(16);
    if (this.radix === 'X') digits = digits.toUpperCase();
    if (digits.length < this.width) digits = (this.zeroPad ? '0' : ' ').repeat(this.width - digits.length) + digits;
    return `${this.prefix}${digits}${this.suffix}`;
  }

  /** The id a name was formatted from, or null when the name does not have the template's shape. */
  parseId(name: string): number | null {
    if (!this.pattern.test(name)) return null;
    const digits = name.slice(this.prefix.length, name.length - this.suffix.length);
    const id = Number.parseInt(digits, this.radix === 'd' ? 10 : 16);
    return Number.isSafeInteger(id) ? id : null;
  }

  matches(name: string): boolean {
    return this.pattern.test(name);
  }

  /** Returns the name unchanged, or throws InvalidInstanceName saying why it is refused. */
  validate(name: unknown): string {
    if (typeof name !== 'string' || name.length === 0) throw new InvalidInstanceName(String(name), 'empty or not a string');
    if (name.length > MAX_INSTANCE_NAME_LENGTH) throw new InvalidInstanceName(name, `longer than ${MAX_INSTANCE_NAME_LENGTH} characters`);
    if (name.includes('\0')) throw new InvalidInstanceName(name, 'contains a NUL byte');
    if (name.includes('/') || name.includes('\\') || name === '.' || name === '..' || name.includes('..')) {
      throw new InvalidInstanceName(name, 'contains a path separator or ".."');
    }
    if (!this.pattern.test(name)) throw new InvalidInstanceName(name, `does not match instance_name_template ${this.template}`);
    return name;
  }
}

/**
 * The path of `<name><suffix>` inside `dir`, for a name already validated. Resolves the result and
 * refuses anything that would land outside `dir` (defence in depth behind validate()).
 */
export function pathInside(dir: string, name: string, suffix: string): string {
  const base = path.resolve(dir);
  const full = path.resolve(base, `${name}${suffix}`);
  if (path.dirname(full) !== base) throw new InvalidInstanceName(name, `resolves outside ${base}`);
  return full;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
