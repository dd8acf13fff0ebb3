// The main job, for a newcomer: a real QEMU guest started the way libvirt starts it, novamon-compute
// serving it on the local RabbitMQ, real compute RPC calls sent in oslo.messaging's wire format with
// novamon-manage, and the database rows they left. Run with `npm run demo` (add `-- --keep` to leave
// the guest and the service running for the README's other examples).
//
// `npm run demo -- --api` runs the whole deployment instead: compute, novamon-api (noauth2),
// novamon-novncproxy and novamon-serialproxy sharing the local PostgreSQL, driven with Debian's
// `openstack` client, and left running until Ctrl-C so the console URL can be opened in a browser.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config/loader.js';
import { cleanUpOnSignals, cleanupAll, onCleanup, type CleanupStep } from '../test/fixtures/cleanup.js';
import { startFixtureGuest, waitForFileText, FIXTURE_CONSOLE_LINE } from '../test/fixtures/guest.js';
import { freePort } from '../test/fixtures/scratch.js';
import { openSerialSession } from '../test/fixtures/serial-proxy.js';

const root = path.resolve(import.meta.dirname, '..');
const apiMode = process.argv.includes('--api');
const DEMO_DB = 'novamon_demo';
if (apiMode) {
  // Several services share one database: PostgreSQL (the embedded one belongs to a single process).
  process.env['NOVAMON_DATABASE__CONNECTION'] ??= `postgresql://postgres@127.0.0.1:5432/${DEMO_DB}`;
  process.env['NOVAMON_API__AUTH_STRATEGY'] ??= 'noauth2';
  process.env['NOVAMON_DEFAULT__DEFAULT_INSTANCE_PROJECT'] ??= 'admin';
  process.env['NOVAMON_DEFAULT__DEFAULT_INSTANCE_USER'] ??= 'admin';
  process.env['NOVAMON_SERIAL_CONSOLE__ENABLED'] ??= 'true';
}
const configFile = path.join(root, 'etc/novamon/novamon.conf');
const config = loadConfig([configFile], process.env);
const keep = process.argv.includes('--keep') || apiMode;
const run = promisify(execFile);
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
/** Set once the API demo waits for Ctrl-C: from then on Ctrl-C is the way to stop, not an interruption. */
let waitingForCtrlC = false;
// Ctrl-C (or a failure) at any point stops what the demo started: services, then the guest.
cleanUpOnSignals(() => (waitingForCtrlC ? 0 : 130));

function step(title: string): void {
  process.stdout.write(`\n${bold(`== ${title}`)}\n`);
}

async function manage(...args: string[]): Promise<string> {
  process.stdout.write(`$ novamon-manage ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(' ')}\n`);
  const { stdout } = await run(process.execPath, [path.join(root, 'bin/novamon-manage.js'), '--config-file', configFile, ...args], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  });
  process.stdout.write(stdout);
  return stdout;
}

/**
 * Starts a service and waits for its "ready" line. Its log goes to the terminal, or with `logFile` to that
 * file, detached, so that it can outlive the demo (--keep). A cleanup step stops it (SIGTERM, then waits).
 */
async function startService(binary: string, logFile?: string): Promise<{ child: ChildProcess; stop: CleanupStep }> {
  const args = [path.join(root, `bin/${binary}.js`), '--config-file', configFile];
  let log = '';
  let child: ChildProcess;
  let readLog: () => string;
  if (logFile) {
    const fd = openSync(logFile, 'w');
    child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    readLog = () => readFileSync(logFile, 'utf8');
  } else {
    child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      process.stderr.write(chunk);
    });
    readLog = () => log;
  }
  const exited = new Promise((r) => child.once('exit', r));
  const stop = onCleanup(binary, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  });
  const deadline = Date.now() + 60_000;
  while (!readLog().includes(`${binary} ready`)) {
    if (child.exitCode !== null) throw new Error(`${binary} exited with ${child.exitCode}${logFile ? ` (log: ${logFile})` : ''}`);
    if (Date.now() > deadline) throw new Error(`${binary} did not become ready within 60 s`);
    await sleep(100);
  }
  return { child, stop };
}

async function main(): Promise<void> {
  const instancesPath = config.DEFAULT.instances_path;
  const name = 'instance-0000000a';
  step(`1. A QEMU guest started the way libvirt starts it (${config.DEFAULT.state_path})`);
  // A fresh demo: the previous run's guest, database and files go.
  await run('pkill', ['-f', `${instancesPath}/${name}.monitor`]).catch(() => undefined);
  rmSync(config.DEFAULT.state_path, { recursive: true, force: true });
  if (apiMode) {
    process.stdout.write(`PostgreSQL database ${DEMO_DB}, created afresh:\n`);
    await run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-c', `drop database if exists ${DEMO_DB} with (force)`]);
    await run('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-c', `create database ${DEMO_DB}`]);
    await manage('db', 'sync');
  }
  // Kept past the demo's exit only with --keep; stopped by the cleanup on a failure or Ctrl-C.
  // With --api its serial port is also a TCP server, for the serial console (Nova's [serial_console] set-up).
  const serial = apiMode ? { serialTcpPort: await freePort() } : {};
  const guest = await startFixtureGuest({ instancesPath, name, uuid: randomUUID(), vnc: true, keepAfterExit: keep, ...serial });
  const stopGuest = onCleanup('guest', () => guest.stop());
  process.stdout.write(`guest ${guest.name} uuid ${guest.uuid} pid ${guest.pid}\nmonitor ${guest.socketPath}\n`);
  await waitForFileText(guest.consoleLogPath, FIXTURE_CONSOLE_LINE, 30_000);
  process.stdout.write(`its serial port wrote: "${FIXTURE_CONSOLE_LINE}"\n`);

  step('2. The monitor, straight from the socket (like virsh qemu-monitor-command)');
  await manage('monitor-command', name, '{"execute":"query-status"}');
  await manage('monitor-command', name, '--hmp', 'info vnc');

  if (apiMode) return runApiDemo(name);

  step('3. novamon-compute serving compute.' + config.DEFAULT.host + ' on RabbitMQ');
  const logFile = keep ? path.join(config.DEFAULT.state_path, 'novamon-compute.log') : undefined;
  if (logFile) mkdirSync(path.dirname(logFile), { recursive: true });
  const compute = await startService('novamon-compute', logFile);
  step('4. Compute RPC calls, in oslo.messaging\'s wire format');
  await manage('rpc', 'call', 'get_console_output', '--instance', guest.uuid ?? name, '--arg', 'tail_length=5');
  await manage('rpc', 'call', 'get_instance_diagnostics', '--instance', name);
  await manage('rpc', 'call', 'get_vnc_console', '--instance', name, '--arg', 'console_type=novnc');
  await manage('rpc', 'call', 'pause_instance', '--instance', name, '--cast');
  await sleep(500);
  await manage('monitor-command', '--rpc', name, '{"execute":"query-status"}');
  await manage('rpc', 'call', 'unpause_instance', '--instance', name, '--cast');
  await manage('rpc', 'call', 'stop_instance', '--instance', name, '--arg', 'clean_shutdown=false');
  await manage('rpc', 'call', 'start_instance', '--instance', name);
  await manage('rpc', 'call', 'get_diagnostics', '--instance', name);
  await manage('rpc', 'call', 'no_such_method', '--instance', name).catch((err: { stderr?: string }) => process.stdout.write(err.stderr ?? ''));
  if (keep) {
    // start_instance relaunched QEMU: its pid now is the pidfile's, not the one it was started with.
    compute.stop.forget();
    stopGuest.forget();
    compute.child.unref();
    process.stdout.write(`\nnovamon-compute (pid ${compute.child.pid}, log ${logFile}) and the guest (pid ${guest.currentPid()}) keep running (--keep).\n`);
    process.stdout.write(`Stop them with: kill ${compute.child.pid} ${guest.currentPid()}\n`);
    return;
  }
  await compute.stop.run(); // it releases the embedded database

  step('5. What the database recorded (embedded PGlite; the service has stopped and released it)');
  await manage('instance', 'show', name);
  await manage('instance', 'actions', name);
  await manage('instance', 'faults', name);
  await stopGuest.run();
  process.stdout.write('\nDone: the guest and the service are stopped.\n');
}

async function openstack(...args: string[]): Promise<string> {
  const endpoint = `http://${config.DEFAULT.osapi_compute_listen}:${config.DEFAULT.osapi_compute_listen_port}/v2.1`;
  const full = ['--os-auth-type', 'admin_token', '--os-endpoint', endpoint, '--os-token', 'admin', ...args];
  process.stdout.write(`$ openstack ${full.join(' ')}\n`);
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('OS_')) delete env[k];
  const { stdout } = await run('openstack', full, { env, maxBuffer: 16 * 1024 * 1024 });
  process.stdout.write(stdout);
  return stdout;
}

/** Compute, API and console proxies on PostgreSQL, driven with the openstack client, until Ctrl-C. */
async function runApiDemo(name: string): Promise<void> {
  step('3. novamon-compute, novamon-api (noauth2), novamon-novncproxy and novamon-serialproxy, sharing PostgreSQL');
  for (const binary of ['novamon-compute', 'novamon-api', 'novamon-novncproxy', 'novamon-serialproxy']) await startService(binary);
  step('4. The openstack client, unchanged, against novamon-api');
  await openstack('server', 'list');
  await openstack('console', 'log', 'show', '--lines', '3', name);
  await openstack('console', 'url', 'show', '--novnc', name);
  const serialUrl = /ws:\/\/\S+\?token=[0-9a-f-]+/.exec(await openstack('console', 'url', 'show', '--serial', name))?.[0];
  if (!serialUrl) throw new Error('openstack console url show --serial printed no URL');
  const session = await openSerialSession(serialUrl);
  process.stdout.write(`read through the serial console URL: "${await session.tick()}"\n`);
  await session.close();
  await openstack('server', 'pause', name);
  await sleep(1000);
  await openstack('server', 'show', name, '-c', 'status', '-c', 'OS-EXT-STS:power_state', '-c', 'OS-EXT-STS:vm_state');
  await openstack('server', 'unpause', name);
  await openstack('server', 'event', 'list', name);
  process.stdout.write(`\nEverything keeps running: open the console URL above in a browser, or try more openstack commands.\nCtrl-C stops the services and the guest.\n`);
  // The signal handler stops the services and the guest, then exits 0.
  waitingForCtrlC = true;
  await new Promise(() => setInterval(() => undefined, 1 << 30));
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
