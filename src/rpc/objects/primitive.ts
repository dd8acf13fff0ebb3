// NovaObject primitives: the {"nova_object.name", namespace, version, data, changes} shape every
// Nova object takes on the wire. Reading accepts a primitive or, as some callers send, a plain dict.

export interface NovaObjectPrimitive {
  'nova_object.name': string;
  'nova_object.namespace': 'nova';
  'nova_object.version': string;
  'nova_object.data': Record<string, unknown>;
  'nova_object.changes': string[];
}

export function toPrimitive(name: string, version: string, data: Record<string, unknown>): NovaObjectPrimitive {
  return {
    'nova_object.name': name,
    'nova_object.namespace': 'nova',
    'nova_object.version': version,
    'nova_object.data': data,
    'nova_object.changes': Object.keys(data),
  };
}

export class ObjectFormatError extends Error {
  override readonly name = 'ObjectFormatError';
}

export function isPrimitive(value: unknown): value is NovaObjectPrimitive {
  return typeof value === 'object' && value !== null && 'nova_object.data' in value;
}

/**
 * The data of an object argument. A primitive must be of the expected class, namespace `nova`, and a
 * major version no newer than `maxMajor` (Nova's deserializer rejects newer majors the same way).
 */
export function primitiveData(value: unknown, expectedName: string, maxMajor: number): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ObjectFormatError(`${expectedName} must be an object`);
  }
  if (!isPrimitive(value)) return value as Record<string, unknown>;
  const p = value as Partial<NovaObjectPrimitive>;
  if (p['nova_object.namespace'] !== 'nova') throw new ObjectFormatError(`${expectedName}: namespace must be nova`);
  if (p['nova_object.name'] !== expectedName) {
    throw new ObjectFormatError(`expected a ${expectedName} object, got ${String(p['nova_object.name']).slice(0, 40)}`);
  }
  const major = Number.parseInt(String(p['nova_object.version'] ?? '').split('.')[0] ?? '', 10);
  if (!Number.isInteger(major) || major > maxMajor) {
    throw new ObjectFormatError(`${expectedName} version ${String(p['nova_object.version']).slice(0, 20)} is not supported`);
  }
  const data = p['nova_object.data'];
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ObjectFormatError(`${expectedName}: data must be an object`);
  return data;
}
