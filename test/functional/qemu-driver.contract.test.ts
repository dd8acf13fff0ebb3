// Runs the ComputeDriver contract suite against the qemu driver with real QEMU fixture guests (TCG),
// each test file in its own temporary instances_path and state dir.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger, silentLogger } from '../../src/logging.js';
import { QmpMonitorRegistry } from '../../src/qmp/monitor-registry.js';
import { InstanceNameTemplate } from '../../src/virt/instance-name.js';
import { QemuDriver } from '../../src/virt/qemu/driver.js';
import { driverContract, type ContractGuest } from '../contract/driver-contract.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';

const COMMAND_TIMEOUT_MS = 3000;

driverContract('qemu', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'novamon-qemu-contract-'));
  const instancesPath = path.join(root, 'instances');
  const template = new InstanceNameTemplate('instance-%08x');
  const monitors = new QmpMonitorRegistry({ connectTimeoutMs: COMMAND_TIMEOUT_MS, commandTimeoutMs: COMMAND_TIMEOUT_MS, logger: silentLogger() });
  const driver = new QemuDriver({
    instancesPath,
    nameTemplate: template,
    monitors,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    logger: process.env['NOVAMON_TEST_LOG'] ? createLogger({ debug: true, format: 'pretty', name: 'qemu-contract' }) : silentLogger(),
    stateDir: path.join(root, 'state'),
    softRebootWaitSeconds: 1,
  });
  const fixtures = new Map<string, FixtureGuest>();
  let nextId = 1;

  const pidOf = (g: ContractGuest): number => {
    const pid = fixtures.get(g.ref.name)?.currentPid();
    if (!pid) throw new Error(`no QEMU running for ${g.ref.name}`);
    return pid;
  };

  return {
    driver,
    unknownName: template.format(0x7fffffff),
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    consolesListen: true,
    async createGuest() {
      const fixture = await startFixtureGuest({ instancesPath, name: template.format(nextId++), vnc: true });
      fixtures.set(fixture.name, fixture);
      return { ref: { name: fixture.name, uuid: fixture.uuid ?? undefined }, uuid: fixture.uuid ?? '' };
    },
    async killGuest(g) {
      process.kill(pidOf(g), 'SIGKILL');
    },
    async freezeGuest(g) {
      const pid = pidOf(g);
      process.kill(pid, 'SIGSTOP');
      return async () => {
        process.kill(pid, 'SIGCONT');
      };
    },
    async teardown() {
      await driver.close();
      await monitors.closeAll();
      await Promise.all([...fixtures.values()].map((f) => f.stop()));
      await rm(root, { recursive: true, force: true });
    },
  };
});
