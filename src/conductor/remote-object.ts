// A NovaObject held on the compute side and written through nova-conductor: its primitive data as the
// conductor sent it, plus the fields this host changed since. Reading a reply and merging an
// object_action's updates back follow oslo.versionedobjects (obj_from_primitive, _obj_action's merge).

import { z } from 'zod';
import type { NovaObjectPrimitive } from '../rpc/objects/primitive.js';
import { ObjectFormatError } from '../rpc/objects/primitive.js';

const primitiveShape = z.object({
  'nova_object.name': z.string().min(1).max(64),
  'nova_object.namespace': z.literal('nova'),
  'nova_object.version': z.string().regex(/^\d{1,3}\.\d{1,3}(\.\d{1,3})?$/),
  'nova_object.data': z.record(z.string(), z.unknown()),
  'nova_object.changes': z.array(z.string()).optional(),
});

/** Nested primitives lose their change lists: this host only ever writes the fields it sets itself. */
function withoutChanges(value: unknown, depth = 0): unknown {
  if (depth > 16 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => withoutChanges(v, depth + 1));
  const rec = value as Record<string, unknown>;
  if (!('nova_object.data' in rec)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'nova_object.changes') continue;
    out[k] = k === 'nova_object.data' ? withoutChanges(v, depth + 1) : v;
  }
  if (typeof out['nova_object.data'] === 'object' && out['nova_object.data'] !== null) {
    const data: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out['nova_object.data'] as Record<string, unknown>)) data[k] = withoutChanges(v, depth + 1);
    out['nova_object.data'] = data;
  }
  return out;
}

export class RemoteObject {
  private readonly changed = new Set<string>();

  constructor(
    readonly name: string,
    readonly version: string,
    private data: Record<string, unknown>,
  ) {}

  /** A new object (Service.create, InstanceFault.create): every field given counts as changed. */
  static create(name: string, version: string, fields: Record<string, unknown>): RemoteObject {
    const o = new RemoteObject(name, version, {});
    for (const [k, v] of Object.entries(fields)) o.set(k, v);
    return o;
  }

  /**
   * An object as the conductor (or a compute RPC caller) sent it. `expectedName` guards against a reply
   * of the wrong class; the sender's change list is dropped (nothing is written back unless set here).
   */
  static fromPrimitive(value: unknown, expectedName: string): RemoteObject {
    const parsed = primitiveShape.safeParse(value);
    if (!parsed.success) throw new ObjectFormatError(`${expectedName}: not a NovaObject primitive (${parsed.error.issues[0]?.message ?? 'invalid'})`);
    const p = parsed.data;
    if (p['nova_object.name'] !== expectedName) {
      throw new ObjectFormatError(`expected a ${expectedName} object, got ${p['nova_object.name']}`);
    }
    const clean = withoutChanges(p) as NovaObjectPrimitive;
    return new RemoteObject(expectedName, p['nova_object.version'], { ...clean['nova_object.data'] });
  }

  /** An independent copy (same fields and changes), so concurrent writers never share one object. */
  clone(): RemoteObject {
    const o = new RemoteObject(this.name, this.version, structuredClone(this.data));
    for (const f of this.changed) o.changed.add(f);
    return o;
  }

  has(field: string): boolean {
    return Object.hasOwn(this.data, field);
  }

  get(field: string): unknown {
    return this.has(field) ? this.data[field] : undefined;
  }

  /** Sets a field and marks it changed (Python's attribute assignment on a NovaObject). */
  set(field: string, value: unknown): void {
    this.data[field] = value;
    this.changed.add(field);
  }

  changes(): string[] {
    return [...this.changed];
  }

  /** A copy of the set fields, values as they travel on the wire. */
  fields(): Record<string, unknown> {
    return { ...this.data };
  }

  /** The primitive to send: set fields, and `changes` only when some field changed (as oslo writes it). */
  toPrimitive(): NovaObjectPrimitive | Omit<NovaObjectPrimitive, 'nova_object.changes'> {
    const base = {
      'nova_object.name': this.name,
      'nova_object.namespace': 'nova' as const,
      'nova_object.version': this.version,
      'nova_object.data': { ...this.data },
    };
    return this.changed.size > 0 ? { ...base, 'nova_object.changes': [...this.changed] } : base;
  }

  /**
   * oslo's object_action merge: every key of `updates` that is not `obj_what_changed` becomes the
   * field's value; then the change list is exactly `updates.obj_what_changed` (normally empty).
   */
  mergeUpdates(updates: unknown): void {
    if (typeof updates !== 'object' || updates === null || Array.isArray(updates)) {
      throw new ObjectFormatError(`${this.name}: the conductor's updates are not a dict`);
    }
    const rec = updates as Record<string, unknown>;
    for (const [k, v] of Object.entries(rec)) {
      if (k === 'obj_what_changed') continue;
      this.data[k] = withoutChanges(v);
    }
    this.changed.clear();
    const still = rec['obj_what_changed'];
    if (Array.isArray(still)) for (const f of still) if (typeof f === 'string' && this.has(f)) this.changed.add(f);
  }

  /** Forget local changes (after a save the conductor refused, the caller decides what to keep). */
  resetChanges(): void {
    this.changed.clear();
  }
}
