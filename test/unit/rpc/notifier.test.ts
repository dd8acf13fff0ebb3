import { describe, expect, test } from 'vitest';
import { notificationContext, pythonUtcTimestamp } from '../../../src/rpc/notifier.js';

describe('notification wire details', () => {
  test('timestamps read like Python\'s str(utcnow())', () => {
    expect(pythonUtcTimestamp(new Date('2026-12-01T23:57:42.507Z'))).toBe('2026-12-01 23:57:42.507000');
    expect(pythonUtcTimestamp(new Date('2026-12-01T23:57:42.000Z'))).toBe('2026-12-01 23:57:42');
  });

  test('the context carries Nova\'s keys from the safe subset only: never the caller\'s token or catalog', () => {
    const c = notificationContext(
      { userId: 'u1', projectId: 'p1', isAdmin: true, roles: ['admin'], requestId: 'req-abc', globalRequestId: null, raw: { auth_token: 'SECRET', service_catalog: [{ x: 1 }], user_name: 'uname', project_name: 'pname' } },
      new Date('2026-12-01T23:57:42.507Z'),
    );
    expect(c).toMatchObject({
      _context_user: 'u1',
      _context_project_id: 'p1',
      _context_is_admin: true,
      _context_auth_token: null,
      _context_request_id: 'req-abc',
      _context_roles: ['admin'],
      _context_user_identity: 'u1 p1 - - -',
      _context_timestamp: '2026-12-01T23:57:42.507000',
      _context_user_name: 'uname',
      _context_service_catalog: [],
      _context_project_name: 'pname',
    });
    expect(JSON.stringify(c)).not.toContain('SECRET');
  });
});
