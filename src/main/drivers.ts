// Builds the ComputeDriver that `[DEFAULT] compute_driver` names. Each driver module is loaded only
// when chosen, so a qemu host never loads the libvirt client and the other way round.

import path from 'node:path';
import type { Config } from '../config/options.js';
import type { Logger } from '../logging.js';
import type { ComputeDriver } from '../virt/driver.js';
import { InstanceNameTemplate } from '../virt/instance-name.js';

/** Where the qemu driver keeps its launch records, screendumps and panic dumps. */
export function qemuStateDir(config: Config): string {
  return path.join(config.DEFAULT.state_path, 'qemu');
}

export async function createDriver(config: Config, logger: Logger): Promise<ComputeDriver> {
  const nameTemplate = new InstanceNameTemplate(config.DEFAULT.instance_name_template);
  const commandTimeoutMs = config.monitor.command_timeout * 1000;
  const connectTimeoutMs = config.monitor.connect_timeout * 1000;
  switch (config.DEFAULT.compute_driver) {
    case 'qemu': {
      const { QmpMonitorRegistry } = await import('../qmp/monitor-registry.js');
      const { QemuDriver } = await import('../virt/qemu/driver.js');
      const monitors = new QmpMonitorRegistry({ connectTimeoutMs, commandTimeoutMs, logger: logger.child({ component: 'qmp' }) });
      // The registry belongs to this composition: the driver's close() ends every monitor connection.
      class QemuDriverOwningMonitors extends QemuDriver {
        override async close(): Promise<void> {
          await super.close();
          await monitors.closeAll();
        }
      }
      return new QemuDriverOwningMonitors({
        instancesPath: config.DEFAULT.instances_path,
        nameTemplate,
        monitors,
        commandTimeoutMs,
        host: config.DEFAULT.host,
        logger: logger.child({ component: 'qemu-driver' }),
        stateDir: qemuStateDir(config),
        emulators: config.qemu.emulators,
        relaunchImagePaths: config.qemu.relaunch_image_paths,
        softRebootWaitSeconds: config.libvirt.wait_soft_reboot_seconds,
        proxyClientAddress: config.vnc.server_proxyclient_address,
        panicDump: {
          enabled: config.qemu.panic_dump,
          maxBytes: config.qemu.panic_dump_max_bytes,
          keep: config.qemu.panic_dump_keep,
          timeoutMs: config.qemu.panic_dump_timeout * 1000,
        },
      });
    }
    case 'libvirt': {
      const { LibvirtDriver } = await import('../virt/libvirt/driver.js');
      return new LibvirtDriver(config, logger);
    }
    case 'fake': {
      const { FakeDriver } = await import('../virt/fake/driver.js');
      return new FakeDriver({ nameTemplate, commandTimeoutSeconds: config.monitor.command_timeout });
    }
  }
}
