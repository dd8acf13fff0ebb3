import { describe, expect, test } from 'vitest';
import { ApiFault, faultFromError, webobErrorPage, webobMediaType } from '../../../src/api/faults.js';
import { pyRepr, schemas, validateBody } from '../../../src/api/validation.js';
import { InstanceInvalidState, InstanceNotFound, NotImplementedByDriver } from '../../../src/exception.js';
import { MessagingTimeout } from '../../../src/rpc/client.js';
import { RemoteError } from '../../../src/rpc/failure.js';

describe('fault mapping', () => {
  const map = (err: unknown) => {
    const f = faultFromError(err, 'get_diagnostics', 'S1', { host: 'h1', seconds: 60 });
    return { status: f.status, body: f.body() };
  };

  test('remote Nova exceptions keep Nova API codes and fault names', () => {
    expect(map(new RemoteError('InstanceNotFound', 'nova.exception', 'Instance X could not be found.'))).toEqual({
      status: 404,
      body: { itemNotFound: { code: 404, message: 'Instance X could not be found.' } },
    });
    expect(map(new RemoteError('ConsoleTypeInvalid', 'nova.exception', 'Invalid console type foo')).status).toBe(400);
    expect(map(new RemoteError('ConsoleTypeUnavailable', 'nova.exception', 'Unavailable console type foo.')).status).toBe(400);
    expect(map(new RemoteError('InstanceNotReady', 'nova.exception', 'Instance X has not been scheduled.')).body).toEqual({
      conflictingRequest: { code: 409, message: 'Instance X has not been scheduled.' },
    });
    expect(map(new RemoteError('NotImplementedError', 'builtins', '')).body).toEqual({
      notImplemented: { code: 501, message: 'The requested functionality is not supported.' },
    });
    expect(map(new RemoteError('KeyError', 'builtins', 'boom')).status).toBe(500);
  });

  test('InstanceInvalidState becomes the API\'s "Cannot \'op\'" conflict', () => {
    const remote = new RemoteError('InstanceInvalidState', 'nova.exception', 'x', { attr: 'power_state', state: 'shutdown', method: 'get_diagnostics', instance_uuid: 'u' });
    expect(map(remote).body).toEqual({ conflictingRequest: { code: 409, message: "Cannot 'get_diagnostics' instance S1 while it is in power_state shutdown" } });
    expect(map(new InstanceInvalidState('u', 'vm_state', 'stopped', 'stop')).status).toBe(409);
  });

  test('local exceptions and timeouts', () => {
    expect(map(new InstanceNotFound('u')).status).toBe(404);
    expect(map(new NotImplementedByDriver('x')).status).toBe(501);
    const t = map(new MessagingTimeout('no reply'));
    expect(t.status).toBe(500);
    expect(t.body['computeFault']?.message).toContain('Compute host h1 did not answer within 60 s.');
    expect(t.body['computeFault']?.message).toContain("<class 'oslo_messaging.exceptions.MessagingTimeout'>");
    expect(new ApiFault(406, 'x').body()).toEqual({ computeFault: { code: 406, message: 'x' } });
  });

  test('webob pages follow the Accept header', () => {
    expect(webobMediaType(undefined)).toBe('text/plain');
    expect(webobMediaType('*/*')).toBe('text/html');
    expect(webobMediaType('application/json')).toBe('application/json');
    expect(webobMediaType('text/html;q=0.5, application/json')).toBe('application/json');
    expect(webobErrorPage(404, 'The resource could not be found.', '*/*').body).toContain('<title>404 Not Found</title>');
    expect(JSON.parse(webobErrorPage(404, 'The resource could not be found.', 'application/json').body)).toEqual({
      code: '404 Not Found',
      title: 'Not Found',
      message: 'The resource could not be found.<br /><br />\n\n\n',
    });
  });
});

describe('body validation (Nova\'s messages)', () => {
  test('Python reprs', () => {
    expect(pyRepr({ a: [1, null, true, 'x'] })).toBe("{'a': [1, None, True, 'x']}");
    expect(pyRepr("it's")).toBe('"it\'s"');
  });

  test('console output length: int, digit string, null; >= -1; sole key', () => {
    for (const ok of [{}, { length: 5 }, { length: '5' }, { length: null }, { length: -1 }]) {
      expect(validateBody(schemas.consoleOutput, { 'os-getConsoleOutput': ok })).toBeNull();
    }
    expect(validateBody(schemas.consoleOutput, { 'os-getConsoleOutput': { length: -2 } })).toBe(
      'Invalid input for field/attribute length. Value: -2. -2 is less than the minimum of -1',
    );
    expect(validateBody(schemas.consoleOutput, { 'os-getConsoleOutput': { length: '-5' } })).toBe(
      'Invalid input for field/attribute length. Value: -5. -5 is less than the minimum of -1',
    );
    expect(validateBody(schemas.consoleOutput, { 'os-getConsoleOutput': { length: true } })).toBe(
      "Invalid input for field/attribute length. Value: True. True is not of type 'integer', 'string', 'null'",
    );
  });

  test('reboot type enum and required keys', () => {
    expect(validateBody(schemas.reboot, { reboot: { type: 'Hard' } })).toBeNull();
    expect(validateBody(schemas.reboot, { reboot: { type: 'WARM' } })).toBe(
      "Invalid input for field/attribute type. Value: WARM. 'WARM' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
    );
    expect(validateBody(schemas.reboot, { reboot: {} })).toBe("Invalid input for field/attribute reboot. Value: {}. 'type' is a required property");
    expect(validateBody(schemas.reboot, null)).toBe("None is not of type 'object'");
  });
});
