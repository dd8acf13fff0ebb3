import { describe, expect, it } from 'vitest';
import { InvalidInstanceName } from '../../../src/exception.js';
import { InstanceNameTemplate, pathInside } from '../../../src/virt/instance-name.js';

describe('instance names', () => {
  const t = new InstanceNameTemplate('instance-%08x');
  it('formats and parses like Nova', () => {
    expect(t.format(10)).toBe('instance-0000000a');
    expect(t.format(0x123456789)).toBe('instance-123456789');
    expect(t.parseId('instance-0000000a')).toBe(10);
    expect(t.parseId('vm-1')).toBeNull();
    expect(new InstanceNameTemplate('vm-%d').format(7)).toBe('vm-7');
  });
  it('refuses names that do not have the template\'s shape or could leave the directory', () => {
    for (const bad of ['', '../instance-0000000a', '/etc/passwd', 'instance-0000000a/../x', 'instance-0000000a\0', 'x'.repeat(300), 'instance-0000000A', 'instance-0000000g', 'instance-a']) {
      expect(() => t.validate(bad), bad).toThrow(InvalidInstanceName);
    }
    expect(t.validate('instance-0000000a')).toBe('instance-0000000a');
  });
  it('keeps paths inside the directory', () => {
    expect(pathInside('/srv/i', 'instance-0000000a', '.monitor')).toBe('/srv/i/instance-0000000a.monitor');
    expect(() => pathInside('/srv/i', '../x', '.monitor')).toThrow(InvalidInstanceName);
  });
});
