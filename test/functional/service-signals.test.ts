// What an operator's signals do to novamon-compute, started from dist/ on its embedded database. SIGHUP
// reloads the configuration as oslo.service does for Nova's services: the log level follows `[DEFAULT]
// debug` from then on, other changed options are named as waiting for a restart, and a file that no
// longer loads changes nothing. None of it stops the service, which still stops cleanly on SIGTERM.

import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startComputeService, until, type ComputeService } from '../fixtures/compute-service.js';
import { startFixtureGuest, type FixtureGuest } from '../fixtures/guest.js';

let compute: ComputeService;
const guests: FixtureGuest[] = [];
let original: string;

interface LogLine {
  level: number;
  msg: string;
  needRestart?: string[];
  logLevel?: string;
  socketPath?: string;
}

const lines = (): LogLine[] =>
  compute
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

/** Sends SIGHUP and waits for the answer in the log: the reload, or its refusal. */
async function hangUp(): Promise<LogLine> {
  const before = lines().length;
  compute.process.kill('SIGHUP');
  return until('the SIGHUP answer in the log', async () => lines().slice(before).find((l) => l.msg.startsWith('SIGHUP')) ?? null, compute.logs, { ms: 10_000 });
}

beforeAll(async () => {
  compute = await startComputeService({ databaseUrl: '', logLevel: null });
  original = readFileSync(compute.configPath, 'utf8');
});

afterAll(async () => {
  for (const g of guests) await g.stop();
  await compute?.cleanup();
});

it('turns debug logging on at SIGHUP after [DEFAULT] debug = true, and names options that need a restart', async () => {
  writeFileSync(compute.configPath, original.replace('[DEFAULT]\n', '[DEFAULT]\ndebug = true\nshutdown_timeout = 7\n'));
  const reload = await hangUp();
  expect(reload).toMatchObject({ msg: 'SIGHUP: configuration reloaded', level: 30, logLevel: 'debug', needRestart: ['DEFAULT.shutdown_timeout'] });
  // A debug line the service did not write before: a new guest's monitor connecting.
  const guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-000000d1' });
  guests.push(guest);
  const connected = await until('a debug line for the new guest', async () => lines().find((l) => l.msg === 'QMP monitor connected' && l.socketPath === guest.socketPath) ?? null, compute.logs);
  expect(connected.level).toBe(20);
});

it('keeps the running configuration when the file no longer loads', async () => {
  writeFileSync(compute.configPath, `${original}\n[DEFAULT]\nshutdown_timeout = soon\n`);
  const refused = await hangUp();
  expect(refused.msg).toBe('SIGHUP: configuration not reloaded; the running one stays');
  expect(refused.level).toBe(50);
  expect(compute.process.exitCode).toBeNull();
});

it('goes back to info at SIGHUP after debug is removed, and still stops cleanly on SIGTERM', async () => {
  writeFileSync(compute.configPath, original);
  const reload = await hangUp();
  expect(reload).toMatchObject({ msg: 'SIGHUP: configuration reloaded', logLevel: 'info' });
  expect(reload.needRestart).toBeUndefined();
  const from = lines().length;
  const guest = await startFixtureGuest({ instancesPath: compute.instancesPath, name: 'instance-000000d2' });
  guests.push(guest);
  // The service answers from the new guest's monitor (so it connected to it), without a debug line.
  const { stdout } = await compute.manage('rpc', 'call', 'get_instance_diagnostics', '--instance', guest.name);
  expect(stdout).toContain('"state": "running"');
  const stopped = await compute.stop();
  expect(stopped.code).toBe(0);
  expect(lines().slice(from).filter((l) => l.level < 30)).toEqual([]);
});
