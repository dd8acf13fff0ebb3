// Runs the shared ComputeDriver contract against LibvirtDriver on the local libvirtd (qemu:///system),
// with persistent TCG domains defined by the libvirt fixture. libvirtd is started if it is not running;
// if it cannot be, the suite fails (it never skips).

import { readFile } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { loadConfig } from '../../src/config/loader.js';
import { silentLogger } from '../../src/logging.js';
import { LibvirtDriver } from '../../src/virt/libvirt/driver.js';
import { driverContract, type ContractGuest } from '../contract/driver-contract.js';
import { ensureLibvirtd } from '../fixtures/libvirt-env.js';
import { startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';

const COMMAND_TIMEOUT_S = 10;

driverContract('libvirt', async () => {
  await ensureLibvirtd();
  const config = loadConfig([], {
    NOVAMON_MONITOR__COMMAND_TIMEOUT: String(COMMAND_TIMEOUT_S),
    // The fixture guest ignores ACPI: keep the soft-reboot fallback short.
    NOVAMON_DEFAULT__SHUTDOWN_TIMEOUT: '2',
  });
  const driver = new LibvirtDriver(config, silentLogger());
  const domains = new Map<string, LibvirtDomain>();
  return {
    driver,
    commandTimeoutMs: COMMAND_TIMEOUT_S * 1000,
    consolesListen: true,
    unknownName: `instance-${randomInt(0x10000000, 0x7fffffff).toString(16)}`,
    async createGuest(): Promise<ContractGuest> {
      const d = await startLibvirtDomain({});
      domains.set(d.name, d);
      return { ref: { name: d.name, uuid: d.uuid }, uuid: d.uuid };
    },
    async killGuest(g: ContractGuest): Promise<void> {
      const pid = Number((await readFile(`/run/libvirt/qemu/${g.ref.name}.pid`, 'utf8')).trim());
      process.kill(pid, 'SIGKILL');
    },
    // No freezeGuest: libvirtd answers domain state itself, so a frozen QEMU cannot make get_info time
    // out here. libvirt-driver.test.ts checks that a frozen monitor makes the passthrough time out.
    async teardown(): Promise<void> {
      await driver.close();
      await Promise.all([...domains.values()].map((d) => d.remove()));
    },
  };
});
