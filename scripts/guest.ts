// Starts or stops a fixture guest (the tests' QEMU guest: serial output, VGA text, VNC) in the
// instances_path of a configuration, for trying novamon by hand:
//   npx tsx scripts/guest.ts --config-file etc/novamon/novamon.conf start instance-0000000a [uuid]
//   npx tsx scripts/guest.ts --config-file etc/novamon/novamon.conf stop instance-0000000a
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { configFilesFromArgv, loadServiceConfig } from '../src/main/bootstrap.js';
import { InstanceNameTemplate, pathInside } from '../src/virt/instance-name.js';
import { startFixtureGuest } from '../test/fixtures/guest.js';

const args = process.argv.slice(2).filter((a, i, all) => a !== '--config-file' && all[i - 1] !== '--config-file');
const config = loadServiceConfig(configFilesFromArgv(process.argv), process.env);
const [verb, rawName, uuid] = args;
const name = new InstanceNameTemplate(config.DEFAULT.instance_name_template).validate(rawName);
const instancesPath = config.DEFAULT.instances_path;
if (verb === 'start') {
  const guest = await startFixtureGuest({ instancesPath, name, uuid: uuid ?? randomUUID(), vnc: true, keepAfterExit: true });
  console.log(JSON.stringify({ name: guest.name, uuid: guest.uuid, pid: guest.pid, monitor: guest.socketPath, console: guest.consoleLogPath }));
  // The guest is daemonized: it outlives this script.
  process.exit(0);
} else if (verb === 'stop') {
  try {
    execFileSync('pkill', ['-f', pathInside(instancesPath, name, '.monitor')]);
  } catch {
    console.error(`no QEMU serves ${name}`);
    process.exit(1);
  }
} else {
  console.error('usage: guest.ts [--config-file F] start|stop NAME [UUID]');
  process.exit(2);
}
