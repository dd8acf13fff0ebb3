// Both drivers can be built by an inversify container from their option symbols, as src/main will.

import { Container } from 'inversify';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import { QmpMonitorRegistry } from '../../../src/qmp/monitor-registry.js';
import { ComputeDriver } from '../../../src/virt/driver.js';
import { FakeDriver, FakeDriverOptions } from '../../../src/virt/fake/driver.js';
import { InstanceNameTemplate } from '../../../src/virt/instance-name.js';
import { QemuDriver, QemuDriverOptions } from '../../../src/virt/qemu/driver.js';

describe('driver injection', () => {
  it('builds the fake driver with and without options', () => {
    const c = new Container();
    c.bind(ComputeDriver).to(FakeDriver);
    expect(c.get<FakeDriver>(ComputeDriver).type).toBe('fake');
    c.bind<FakeDriverOptions>(FakeDriverOptions).toConstantValue({ commandTimeoutSeconds: 2 });
    expect(c.get<FakeDriver>(ComputeDriver)).toBeInstanceOf(FakeDriver);
  });

  it('builds the qemu driver from its options', () => {
    const c = new Container();
    c.bind<QemuDriverOptions>(QemuDriverOptions).toConstantValue({
      instancesPath: '/nonexistent/instances',
      nameTemplate: new InstanceNameTemplate('instance-%08x'),
      monitors: new QmpMonitorRegistry({ connectTimeoutMs: 100, commandTimeoutMs: 100 }),
      commandTimeoutMs: 100,
      logger: silentLogger(),
      stateDir: '/nonexistent/state',
    });
    c.bind(ComputeDriver).to(QemuDriver);
    expect(c.get<QemuDriver>(ComputeDriver).type).toBe('qemu');
  });
});
