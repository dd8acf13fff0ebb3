// Request body validation with Nova's messages. Nova validates bodies with jsonschema and answers the
// most relevant error as "Invalid input for field/attribute <key>. Value: <value>. <jsonschema message>",
// values printed the Python way. This is the small subset of JSON Schema the served bodies need.

export interface Schema {
  type?: JsonType | JsonType[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  enum?: readonly unknown[];
  pattern?: string;
  minimum?: number;
  maxLength?: number;
  minLength?: number;
}

type JsonType = 'object' | 'string' | 'integer' | 'boolean' | 'null' | 'number' | 'array';

interface SchemaError {
  path: (string | number)[];
  instance: unknown;
  message: string;
}

/** Python's repr() of a JSON value. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'string') {
    const quote = v.includes("'") && !v.includes('"') ? '"' : "'";
    const body = v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n').replaceAll('\r', '\\r').replaceAll('\t', '\\t');
    return quote + (quote === "'" ? body.replaceAll("'", "\\'") : body) + quote;
  }
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  }
  return String(v);
}

/** Python's str(): strings bare, everything else as repr. */
function pyStr(v: unknown): string {
  return typeof v === 'string' ? v : pyRepr(v);
}

function isType(v: unknown, t: JsonType): boolean {
  switch (t) {
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
  }
}

/** Nova's minimum validator compares digit strings as numbers too. */
function numberFrom(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v)) return Number(v);
  return null;
}

function collect(schema: Schema, value: unknown, path: (string | number)[], out: SchemaError[]): void {
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => isType(value, t))) {
      out.push({ path, instance: value, message: `${pyRepr(value)} is not of type ${types.map((t) => pyRepr(t)).join(', ')}` });
      return;
    }
  }
  if (schema.enum !== undefined && !schema.enum.some((e) => e === value)) {
    out.push({ path, instance: value, message: `${pyRepr(value)} is not one of ${pyRepr([...schema.enum])}` });
  }
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
      out.push({ path, instance: value, message: `${pyRepr(value)} does not match ${pyRepr(schema.pattern)}` });
    }
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      out.push({ path, instance: value, message: `${pyRepr(value)} is too short` });
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      out.push({ path, instance: value, message: `${pyRepr(value)} is too long` });
    }
  }
  if (schema.minimum !== undefined) {
    const n = numberFrom(value);
    if (n !== null && n < schema.minimum) {
      out.push({ path, instance: n, message: `${pyRepr(n)} is less than the minimum of ${schema.minimum}` });
    }
  }
  if (isType(value, 'object')) {
    const obj = value as Record<string, unknown>;
    for (const [key, sub] of Object.entries(schema.properties ?? {})) {
      if (Object.hasOwn(obj, key)) collect(sub, obj[key], [...path, key], out);
    }
    for (const key of schema.required ?? []) {
      if (!Object.hasOwn(obj, key)) out.push({ path, instance: value, message: `${pyRepr(key)} is a required property` });
    }
    if (schema.additionalProperties === false) {
      const extra = Object.keys(obj).filter((k) => !Object.hasOwn(schema.properties ?? {}, k));
      if (extra.length > 0) {
        const verb = extra.length === 1 ? 'was' : 'were';
        out.push({ path, instance: value, message: `Additional properties are not allowed (${extra.map(pyRepr).join(', ')} ${verb} unexpected)` });
      }
    }
  }
}

/**
 * Validates `body` against `schema`; returns null when valid, else Nova's 400 message for the most
 * relevant error (jsonschema's best_match: the shallowest one).
 */
export function validateBody(schema: Schema, body: unknown): string | null {
  const errors: SchemaError[] = [];
  collect(schema, body, [], errors);
  if (errors.length === 0) return null;
  let best = errors[0] as SchemaError;
  for (const e of errors) if (e.path.length < best.path.length) best = e;
  if (best.path.length === 0) return best.message;
  const key = best.path[best.path.length - 1] as string | number;
  return `Invalid input for field/attribute ${String(key)}. Value: ${pyStr(best.instance)}. ${best.message}`;
}

// --- the bodies novamon-api accepts -------------------------------------------------------------------

const action = (key: string, inner: Schema): Schema => ({
  type: 'object',
  properties: { [key]: inner },
  required: [key],
  additionalProperties: false,
});

export const schemas = {
  consoleOutput: action('os-getConsoleOutput', {
    type: 'object',
    properties: { length: { type: ['integer', 'string', 'null'], pattern: '^-?[0-9]+$', minimum: -1 } },
    additionalProperties: false,
  }),
  vncConsole: action('os-getVNCConsole', {
    type: 'object',
    properties: { type: { type: 'string', enum: ['novnc', 'xvpvnc'] } },
    required: ['type'],
    additionalProperties: false,
  }),
  serialConsole: action('os-getSerialConsole', {
    type: 'object',
    properties: { type: { type: 'string', enum: ['serial'] } },
    required: ['type'],
    additionalProperties: false,
  }),
  reboot: action('reboot', {
    type: 'object',
    properties: { type: { type: 'string', enum: ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft'] } },
    required: ['type'],
    additionalProperties: false,
  }),
  remoteConsoleV26: action('remote_console', {
    type: 'object',
    properties: {
      protocol: { type: 'string', enum: ['vnc', 'spice', 'rdp', 'serial'] },
      type: { type: 'string', enum: ['novnc', 'xvpvnc', 'rdp-html5', 'spice-html5', 'serial'] },
    },
    required: ['protocol', 'type'],
    additionalProperties: false,
  }),
  remoteConsoleV28: action('remote_console', {
    type: 'object',
    properties: {
      protocol: { type: 'string', enum: ['vnc', 'spice', 'rdp', 'serial', 'mks'] },
      type: { type: 'string', enum: ['novnc', 'xvpvnc', 'rdp-html5', 'spice-html5', 'serial', 'webmks'] },
    },
    required: ['protocol', 'type'],
    additionalProperties: false,
  }),
  triggerCrashDump: action('trigger_crash_dump', { type: 'null' }),
  monitorCommand: action('novamon-monitorCommand', {
    type: 'object',
    properties: { command: { type: 'string', minLength: 1, maxLength: 65536 }, hmp: { type: 'boolean' } },
    required: ['command'],
    additionalProperties: false,
  }),
} as const satisfies Record<string, Schema>;
