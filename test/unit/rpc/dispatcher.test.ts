import { describe, expect, it } from 'vitest';
import { contextFromMessage } from '../../../src/rpc/context.js';
import { NoSuchMethod, RpcDispatcher, type RpcEndpoint, UnsupportedVersion, versionIsCompatible } from '../../../src/rpc/dispatcher.js';

function endpoint(version: string, methods: Record<string, (args: Record<string, unknown>) => unknown>, namespace: string | null = null): RpcEndpoint {
  return {
    version,
    namespace,
    hasMethod: (m) => Object.hasOwn(methods, m),
    handle: (m, _ctx, args) => {
      const f = methods[m];
      return f ? Promise.resolve().then(() => f(args)) : undefined;
    },
    orderingKey: (_m, args) => (typeof args['uuid'] === 'string' ? args['uuid'] : null),
  };
}
const ctx = contextFromMessage({});

describe('version compatibility', () => {
  it.each([
    ['6.1', '6.0', true],
    ['6.1', '6.1', true],
    ['6.1', '6.2', false],
    ['6.1', '7.0', false],
    ['6.1', '5.0', false],
    ['5.13', '5.2', true],
    ['5.13', '5.14', false],
    ['6.1', '6.1.1', false],
    ['6.1.2', '6.1.1', true],
    ['6.1', 'six', false],
    ['6.1', '', false],
  ])('served %s, requested %s -> %s', (served, requested, ok) => {
    expect(versionIsCompatible(served, requested)).toBe(ok);
  });
});

describe('RpcDispatcher', () => {
  const d = new RpcDispatcher([
    endpoint('6.1', { get: (a) => ({ v6: a }), only6: () => 6 }),
    endpoint('5.13', { get: () => 'v5' }),
    endpoint('1.0', { ping: () => 'pong' }, 'baseapi'),
  ]);

  it('routes by major version to the endpoint serving it', async () => {
    expect(await d.dispatch('get', '6.0', null, ctx, { a: 1 })).toEqual({ v6: { a: 1 } });
    expect(await d.dispatch('get', '5.0', null, ctx, {})).toBe('v5');
    expect(await d.dispatch('ping', '1.0', 'baseapi', ctx, {})).toBe('pong');
  });

  it('raises NoSuchMethod when a compatible endpoint lacks the method', async () => {
    await expect(d.dispatch('only6', '5.0', null, ctx, {})).rejects.toBeInstanceOf(NoSuchMethod);
    await expect(d.dispatch('nope', '6.0', null, ctx, {})).rejects.toThrow('Endpoint does not support RPC method nope');
  });

  it('raises UnsupportedVersion with oslo wording when no endpoint accepts the version', async () => {
    await expect(d.dispatch('get', '7.0', null, ctx, {})).rejects.toThrow('Endpoint does not support RPC version 7.0. Attempted method: get');
    await expect(d.dispatch('get', '6.2', null, ctx, {})).rejects.toBeInstanceOf(UnsupportedVersion);
    await expect(d.dispatch('get', '6.0', 'other', ctx, {})).rejects.toBeInstanceOf(UnsupportedVersion);
  });

  it('turns synchronous throws and declined methods into rejections', async () => {
    const bad: RpcEndpoint = {
      version: '1.0',
      hasMethod: () => true,
      handle: (m) => {
        if (m === 'throw') throw new Error('sync');
        return undefined;
      },
      orderingKey: () => {
        throw new Error('bad key fn');
      },
    };
    const d2 = new RpcDispatcher([bad]);
    await expect(d2.dispatch('throw', '1.0', null, ctx, {})).rejects.toThrow('sync');
    await expect(d2.dispatch('declined', '1.0', null, ctx, {})).rejects.toBeInstanceOf(NoSuchMethod);
    expect(d2.orderingKey(bad, 'x', {})).toBeNull();
  });

  it('refuses an endpoint with a malformed version', () => {
    expect(() => new RpcDispatcher([endpoint('6', {})])).toThrow();
  });
});
