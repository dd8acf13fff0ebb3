import { describe, expect, it } from 'vitest';
import { contextFromMessage, contextToMessage } from '../../../src/rpc/context.js';

describe('request context', () => {
  const msg = {
    method: 'x',
    _context_user_id: 'u1',
    _context_project_id: 'p1',
    _context_is_admin: true,
    _context_request_id: 'req-1',
    _context_roles: ['admin', 7],
    _context_auth_token: 'secret',
    _context_global_request_id: 'req-g',
    _unique_id: 'abc',
  };

  it('reads the _context_ keys it uses and keeps the rest raw', () => {
    const ctx = contextFromMessage(msg);
    expect(ctx).toMatchObject({ userId: 'u1', projectId: 'p1', isAdmin: true, roles: ['admin'], requestId: 'req-1', globalRequestId: 'req-g' });
    expect(ctx.raw['auth_token']).toBe('secret');
    expect(ctx.raw).not.toHaveProperty('_unique_id');
  });

  it('tolerates hostile or missing values', () => {
    const ctx = contextFromMessage({ _context_is_admin: 'yes', _context_roles: 'admin', _context_user_id: 5 });
    expect(ctx).toMatchObject({ userId: null, projectId: null, isAdmin: false, roles: [], requestId: null });
    expect(contextFromMessage({ _context_tenant: 't', _context_user: 'u' })).toMatchObject({ userId: 'u', projectId: 't' });
  });

  it('writes the keys in the order Nova sends them and passes raw keys through', () => {
    const out = contextToMessage(contextFromMessage(msg));
    expect(Object.keys(out).slice(0, 5)).toEqual(['_context_user_id', '_context_project_id', '_context_is_admin', '_context_request_id', '_context_roles']);
    expect(out['_context_auth_token']).toBe('secret');
    expect(out['_context_global_request_id']).toBe('req-g');
    expect(out['_context_roles']).toEqual(['admin']);
  });

  it('gives a context without a request id a fresh oslo-style one', () => {
    const out = contextToMessage({ userId: 'u' });
    expect(out['_context_request_id']).toMatch(/^req-[0-9a-f-]{36}$/);
    expect(out['_context_is_admin']).toBe(false);
  });
});
