// Pure helpers of the database layer: token hashing, column case translation, typed row reading and
// the mapping of rows to the repositories' camelCase shapes.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { consoleAccessUrl, consoleTokenFromRow, epochSeconds } from '../../../src/db/console-auth-token-repository.js';
import { diagnosticsToRow } from '../../../src/db/diagnostics-repository.js';
import { instanceFromRow } from '../../../src/db/instance-repository.js';
import { auditFromRow } from '../../../src/db/monitor-audit-repository.js';
import { affectedRows, camelToSnake, intCol, jsonCol, jsonParam, optDateCol, sha256Hex, snakeToCamel, toColumns, truncate } from '../../../src/db/rows.js';

describe('sha256Hex', () => {
  it('matches the known digest of a string', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('is 64 lower-case hex characters for any token', () => {
    fc.assert(fc.property(fc.string(), (s) => /^[0-9a-f]{64}$/.test(sha256Hex(s))));
  });
});

describe('column names', () => {
  it('translates between camelCase and snake_case', () => {
    expect(camelToSnake('instanceUuid')).toBe('instance_uuid');
    expect(camelToSnake('internalAccessPath')).toBe('internal_access_path');
    expect(snakeToCamel('access_url_base')).toBe('accessUrlBase');
  });

  it('round-trips lower camelCase identifiers', () => {
    const ident = fc.stringMatching(/^[a-z]+([A-Z][a-z]+){0,3}$/);
    fc.assert(fc.property(ident, (k) => snakeToCamel(camelToSnake(k)) === k));
  });

  it('toColumns drops undefined but keeps null', () => {
    expect(toColumns({ vmState: 'active', taskState: null, powerState: undefined })).toEqual({ vm_state: 'active', task_state: null });
  });
});

describe('typed row reading', () => {
  it('reads int8 whether the driver gave a number, a string or a bigint', () => {
    expect(intCol({ id: 7 }, 'id')).toBe(7);
    expect(intCol({ id: '9007199254740991' }, 'id')).toBe(9007199254740991);
    expect(intCol({ id: 5n }, 'id')).toBe(5);
    expect(() => intCol({ id: 'x' }, 'id')).toThrow(/column id: expected an integer/);
    expect(() => intCol({}, 'id')).toThrow(TypeError);
  });

  it('reads dates from Date or ISO strings, null stays null', () => {
    expect(optDateCol({ t: '2024-01-02T03:04:05Z' }, 't')?.toISOString()).toBe('2024-01-02T03:04:05.000Z');
    expect(optDateCol({ t: null }, 't')).toBeNull();
    expect(() => optDateCol({ t: 'yesterday' }, 't')).toThrow(/timestamp/);
  });

  it('passes jsonb values as JSON text, arrays included', () => {
    expect(jsonParam([1, 2])).toBe('[1,2]');
    expect(jsonParam({ a: 1 })).toBe('{"a":1}');
    expect(jsonParam(undefined)).toBeNull();
    expect(jsonCol({ j: '{"a":1}' }, 'j')).toEqual({ a: 1 });
    expect(jsonCol({ j: { a: 1 } }, 'j')).toEqual({ a: 1 });
  });

  it('truncates to 255 characters by default', () => {
    expect(truncate('x'.repeat(300))).toHaveLength(255);
    expect(truncate('short')).toBe('short');
  });

  it('reads affected-row counts from both drivers', () => {
    expect(affectedRows(3)).toBe(3);
    expect(affectedRows({ rowCount: 2, command: 'DEL' })).toBe(2);
    expect(() => affectedRows({})).toThrow(TypeError);
  });
});

describe('row mapping', () => {
  const created = new Date('2024-01-01T00:00:00Z');

  it('maps an instances row to camelCase', () => {
    const row = instanceFromRow({
      id: 10, uuid: 'u', name: 'instance-0000000a', host: 'h', node: 'n', hostname: null, display_name: 'web',
      vm_state: 'active', task_state: null, power_state: 1, launched_at: null, terminated_at: null,
      project_id: 'p', user_id: 'u1', created_at: created, updated_at: null, deleted_at: null, deleted: 0,
    });
    expect(row).toEqual({
      id: 10, uuid: 'u', name: 'instance-0000000a', host: 'h', node: 'n', hostname: null, displayName: 'web',
      vmState: 'active', taskState: null, powerState: 1, launchedAt: null, terminatedAt: null,
      projectId: 'p', userId: 'u1', createdAt: created, updatedAt: null, deletedAt: null, deleted: 0,
    });
  });

  it('maps a console token row (pg gives int8 expires as a string)', () => {
    const row = consoleTokenFromRow({
      id: 1, token_hash: 'ab', console_type: 'novnc', host: '127.0.0.1', port: 5900, internal_access_path: null,
      instance_uuid: 'u', access_url_base: 'http://x/vnc_auto.html', expires: '1700000600', created_at: created,
    });
    expect(row.expires).toBe(1700000600);
    expect(row.accessUrlBase).toBe('http://x/vnc_auto.html');
  });

  it('maps a monitor audit row', () => {
    const row = auditFromRow({
      id: '12', instance_uuid: 'u', instance_name: null, host: null, request_id: null, user_id: null, project_id: null,
      kind: 'hmp', command: 'info status', arguments: null, allowed: false, result: 'refused', error: 'policy',
      duration_ms: null, created_at: created, finished_at: created,
    });
    expect(row).toMatchObject({ id: 12, kind: 'hmp', allowed: false, result: 'refused', arguments: null });
  });

  it('takes a snapshot state from its Diagnostics when none is given', () => {
    const r = diagnosticsToRow({ instanceUuid: 'u', diagnostics: { state: 'paused' } as never, capturedAt: created });
    expect(r).toMatchObject({ instance_uuid: 'u', state: 'paused', captured_at: created, legacy: null });
  });
});

describe('console access URL', () => {
  it('puts the token inside noVNC path parameter, as Nova does', () => {
    expect(consoleAccessUrl('http://127.0.0.1:6080/vnc_auto.html', 'novnc', 'abc-123')).toBe('http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3Dabc-123');
  });

  it('uses ?token= for other console types', () => {
    expect(consoleAccessUrl('ws://127.0.0.1:6083/', 'serial', 'abc')).toBe('ws://127.0.0.1:6083/?token=abc');
  });

  it('counts expiry in whole epoch seconds', () => {
    expect(epochSeconds(new Date(1_700_000_000_999))).toBe(1_700_000_000);
  });
});
