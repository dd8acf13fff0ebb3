import { describe, expect, test } from 'vitest';
import {
  InvalidApiVersionString,
  MAX_VERSION,
  UnsupportedApiVersion,
  isSupported,
  negotiateVersion,
  requestedVersionText,
} from '../../../src/api/microversion.js';

describe('microversion negotiation', () => {
  test('no header means 2.1; latest means the maximum', () => {
    expect(negotiateVersion({})).toEqual({ major: 2, minor: 1 });
    expect(negotiateVersion({ 'openstack-api-version': 'compute latest' })).toEqual(MAX_VERSION);
  });

  test('the last compute entry of OpenStack-API-Version wins over the legacy header', () => {
    const h = { 'openstack-api-version': 'identity 3.5, compute 2.6, compute 2.48', 'x-openstack-nova-api-version': '2.3' };
    expect(requestedVersionText(h)).toBe('2.48');
    expect(negotiateVersion({ 'openstack-api-version': ['compute 2.8', 'volume 3.0'] })).toEqual({ major: 2, minor: 8 });
  });

  test('the legacy header is read when the modern one names no compute version', () => {
    expect(negotiateVersion({ 'openstack-api-version': 'volume 3.1', 'x-openstack-nova-api-version': '2.26' })).toEqual({ major: 2, minor: 26 });
  });

  test('malformed strings are 400 material, out-of-range versions 406 material', () => {
    for (const bad of ['2', '2.01', 'two', '02.1', '2.1.1', '']) {
      expect(() => negotiateVersion({ 'x-openstack-nova-api-version': bad })).toThrow(InvalidApiVersionString);
    }
    expect(() => negotiateVersion({ 'x-openstack-nova-api-version': '2.999' })).toThrow(UnsupportedApiVersion);
    expect(() => negotiateVersion({ 'x-openstack-nova-api-version': '2.0' })).toThrow(
      'Version 2.0 is not supported by the API. Minimum is 2.1 and maximum is 2.73.',
    );
    expect(() => negotiateVersion({ 'x-openstack-nova-api-version': '3.0' })).toThrow(UnsupportedApiVersion);
  });

  test('isSupported compares numerically, not as text', () => {
    expect(isSupported({ major: 2, minor: 10 }, '2.9')).toBe(true);
    expect(isSupported({ major: 2, minor: 5 }, '2.1', '2.5')).toBe(true);
    expect(isSupported({ major: 2, minor: 6 }, '2.1', '2.5')).toBe(false);
  });
});
