import { describe, expect, it } from 'vitest';
import { ConsoleTypeUnavailable, InstanceNotFound, MonitorCommandFailed, NotImplementedByDriver } from '../../../src/exception.js';
import { FAILURE_TRACEBACK, failureFromError, MalformedMessage, parseFailure, RemoteError, serializeFailure } from '../../../src/rpc/failure.js';

describe('failure serialisation', () => {
  it('keeps a Nova exception rebuildable: module, class, message as the only arg, kwargs', () => {
    expect(failureFromError(new ConsoleTypeUnavailable('spice'))).toEqual({
      class: 'ConsoleTypeUnavailable',
      module: 'nova.exception',
      message: 'Unavailable console type spice.',
      tb: [...FAILURE_TRACEBACK],
      args: ['Unavailable console type spice.'],
      kwargs: { console_type: 'spice' },
    });
    expect(failureFromError(new MonitorCommandFailed('GenericError', 'boom'))).toMatchObject({ class: 'InternalError', module: 'nova.exception' });
    expect(failureFromError(new NotImplementedByDriver('x'))).toMatchObject({ class: 'NotImplementedError', module: 'builtins' });
  });

  it('turns an unexpected error into InternalError without its message or stack', () => {
    const err = new TypeError("Cannot read properties of undefined (reading 'x') at /srv/novamon/dist/secret.js:1");
    const f = failureFromError(err);
    expect(f).toMatchObject({ class: 'InternalError', module: 'nova.exception' });
    expect(JSON.stringify(f)).not.toContain('/srv');
    expect(f.message).toContain('TypeError');
    expect(f.kwargs).toEqual({ err: f.message });
    expect(failureFromError('a thrown string').message).not.toContain('a thrown string');
  });

  it('sends malformed requests as builtins.ValueError, which any Python client re-raises', () => {
    expect(failureFromError(new MalformedMessage('"args" is missing'))).toMatchObject({ class: 'ValueError', module: 'builtins', kwargs: {}, args: ['Malformed RPC message: "args" is missing'] });
  });

  it('parses a failure string back into a RemoteError', () => {
    const e = parseFailure(serializeFailure(new InstanceNotFound('abc')));
    expect(e).toBeInstanceOf(RemoteError);
    expect(e.is('nova.exception', 'InstanceNotFound')).toBe(true);
    expect(e).toMatchObject({ excType: 'InstanceNotFound', value: 'Instance abc could not be found.', kwargs: { instance_id: 'abc' } });
    expect(e.message).toBe('Instance abc could not be found.');
  });

  it('survives garbage failures', () => {
    expect(parseFailure('{nope').excType).toBe('Unknown');
    expect(parseFailure('[1]').excType).toBe('Unknown');
    expect(parseFailure({ class: 'X', module: 'm', message: 'hi' })).toMatchObject({ excType: 'X', module: 'm', value: 'hi' });
  });
});
