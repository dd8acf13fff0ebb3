// Runs the ComputeDriver contract suite against the in-memory FakeDriver.

import { randomUUID } from 'node:crypto';
import { driverContract, type ContractGuest } from '../../contract/driver-contract.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { InstanceNameTemplate } from '../../../src/virt/instance-name.js';
import { FIXTURE_CONSOLE_LINE } from '../../fixtures/boot-sector.js';

driverContract('fake', async () => {
  const template = new InstanceNameTemplate('instance-%08x');
  const driver = new FakeDriver({ nameTemplate: template, commandTimeoutSeconds: 1 });
  let nextId = 1;
  return {
    driver,
    unknownName: template.format(0x7fffffff),
    commandTimeoutMs: 1000,
    async createGuest(): Promise<ContractGuest> {
      const name = template.format(nextId++);
      const uuid = randomUUID();
      driver.addInstance({ name, uuid, consoleOutput: `SeaBIOS\r\n${FIXTURE_CONSOLE_LINE}\r\n` });
      return { ref: { name, uuid }, uuid };
    },
    async killGuest(g) {
      driver.killProcess(g.ref.name);
    },
    async freezeGuest(g) {
      driver.freeze(g.ref.name);
      return async () => driver.thaw(g.ref.name);
    },
    async teardown() {
      await driver.close();
    },
  };
});
