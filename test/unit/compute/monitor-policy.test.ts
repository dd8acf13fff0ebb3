import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MonitorPolicy } from '../../../src/compute/monitor-policy.js';
import { Invalid } from '../../../src/exception.js';
import type { MonitorCommand } from '../../../src/virt/driver.js';
import { ctx } from './harness.js';

const root = mkdtempSync(path.join(tmpdir(), 'novamon-policy-'));
const instances = path.join(root, 'instances');
mkdirSync(instances);
symlinkSync('/etc', path.join(instances, 'etc-link'));
symlinkSync('/etc/passwd', path.join(instances, 'passwd-link.ppm'));
writeFileSync(path.join(instances, 'old.ppm'), '');
afterAll(() => rmSync(root, { recursive: true, force: true }));

// An operator who allows everything this test needs, including the dangerous ones.
const policy = new MonitorPolicy({
  monitorAllowedCommands: ['query-status', 'human-monitor-command', 'migrate', 'dump-guest-memory', 'screendump', 'netdev_add', 'quit',
    'device_add', 'getfd', 'x-debug-query-block-graph', 'info status', 'hmp:screendump', 'hmp:migrate', 'hmp:quit', 'netdev_add user', 'hmp:dump-guest-memory', 'hmp:pmemsave'],
  instancesPath: instances,
  monitorMigrateUriSchemes: ['tcp', 'unix'],
});
const qmp = (execute: string, args?: Record<string, unknown>): MonitorCommand => ({ kind: 'qmp', execute, ...(args ? { arguments: args } : {}) });
const hmp = (commandLine: string): MonitorCommand => ({ kind: 'hmp', commandLine });
const verdict = (c: MonitorCommand): string => {
  const d = policy.check(ctx(), c);
  if (d.allowed) return 'allowed';
  expect(d.error).toBeInstanceOf(Invalid);
  return d.error.message;
};

describe('monitor passthrough policy', () => {
  it('never runs a command of the built-in deny list, even when the operator lists it', () => {
    for (const c of [qmp('quit'), qmp('netdev_add', { type: 'user', id: 'n1' }), qmp('device_add', { driver: 'e1000' }), qmp('getfd', { fdname: 'x' }), qmp('x-debug-query-block-graph'),
      hmp('quit'), hmp('q'), hmp('netdev_add user,id=n2'), hmp('logfile /tmp/x'), hmp('gdbserver tcp::1234')]) {
      expect(verdict(c)).toMatch(/never allowed/);
    }
    expect(policy.overridden.sort()).toEqual(['device_add', 'getfd', 'hmp:quit', 'netdev_add', 'netdev_add user', 'quit', 'x-debug-query-block-graph'].sort());
  });

  it('migrate: never exec: or fd:, only configured schemes, unix: paths under instances_path', () => {
    expect(verdict(qmp('migrate', { uri: 'exec:sh -c "id > /tmp/pwned"' }))).toMatch(/exec: scheme is never allowed/);
    expect(verdict(qmp('migrate', { uri: 'fd:mig' }))).toMatch(/fd: scheme is never allowed/);
    expect(verdict(qmp('migrate', { uri: 'rdma:1.2.3.4:5' }))).toMatch(/not in \[monitor\] passthrough_migrate_uri_schemes/);
    expect(verdict(qmp('migrate', { uri: 'unix:/tmp/mig.sock' }))).toMatch(/outside instances_path/);
    expect(verdict(qmp('migrate', { uri: 'tcp:10.0.0.2:4444' }))).toBe('allowed');
    expect(verdict(qmp('migrate', { uri: `unix:${instances}/mig.sock` }))).toBe('allowed');
    expect(verdict(hmp('migrate -d exec:cat>/tmp/x'))).toMatch(/exec: scheme is never allowed/);
    expect(verdict(qmp('human-monitor-command', { 'command-line': 'migrate exec:id' }))).toMatch(/exec: scheme is never allowed/);
    expect(verdict(qmp('migrate', { channels: [] }))).toMatch(/channels/);
  });

  it('file-writing commands: absolute paths under instances_path only, no symlink, no traversal', () => {
    expect(verdict(qmp('screendump', { filename: `${instances}/shot.ppm` }))).toBe('allowed');
    expect(verdict(qmp('screendump', { filename: '/etc/cron.d/evil' }))).toMatch(/outside instances_path/);
    expect(verdict(qmp('screendump', { filename: `${instances}/../../etc/cron.d/evil` }))).toMatch(/outside instances_path/);
    expect(verdict(qmp('screendump', { filename: 'shot.ppm' }))).toMatch(/not an absolute path/);
    expect(verdict(qmp('screendump', { filename: `${instances}/etc-link/cron.d/evil` }))).toMatch(/outside instances_path/);
    expect(verdict(qmp('screendump', { filename: `${instances}/passwd-link.ppm` }))).toMatch(/not a regular file/);
    expect(verdict(qmp('screendump', { filename: `${instances}/old.ppm` }))).toBe('allowed');
    expect(verdict(qmp('dump-guest-memory', { paging: false, protocol: `file:${instances}/core` }))).toBe('allowed');
    expect(verdict(qmp('dump-guest-memory', { paging: false, protocol: 'fd:dump' }))).toMatch(/only a file: protocol/);
    expect(verdict(qmp('dump-guest-memory', { paging: false, protocol: 'file:/root/.ssh/authorized_keys' }))).toMatch(/outside instances_path/);
    expect(verdict(hmp(`screendump ${instances}/a.ppm`))).toBe('allowed');
    expect(verdict(hmp('screendump /etc/shadow'))).toMatch(/outside instances_path/);
    expect(verdict(hmp('dump-guest-memory -z /var/tmp/core'))).toMatch(/outside instances_path/);
    expect(verdict(hmp(`pmemsave 0 4096 ${instances}/mem`))).toBe('allowed');
    expect(verdict(hmp('pmemsave 0 4096 /tmp/mem'))).toMatch(/outside instances_path/);
  });

  it('HMP lines are parsed to their command name; quoting tricks are refused', () => {
    expect(verdict(hmp('info status'))).toBe('allowed');
    expect(verdict(hmp('  info   status  '))).toBe('allowed');
    expect(verdict(hmp('info vnc'))).toMatch(/is not allowed/);
    expect(verdict(hmp('screendump "/etc/x"'))).toMatch(/quotes/);
    expect(verdict(hmp('info status\nquit'))).toMatch(/control characters/);
    expect(verdict(qmp('human-monitor-command', { 'command-line': 'quit' }))).toMatch(/never allowed/);
    expect(verdict(qmp('human-monitor-command', { 'command-line': 'info status' }))).toBe('allowed');
    expect(verdict(qmp('query-status'))).toBe('allowed');
    expect(verdict(qmp('query-vnc'))).toMatch(/is not allowed/);
  });

  it('with no instances_path, no path is accepted', () => {
    const p = new MonitorPolicy({ monitorAllowedCommands: ['screendump'] });
    const d = p.check(ctx(), qmp('screendump', { filename: '/var/lib/novamon/instances/x.ppm' }));
    expect(d.allowed).toBe(false);
  });
});
