import { chmodSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InternalError } from '../../../src/exception.js';
import { argvVerdict, emulatorFor } from '../../../src/virt/qemu/launch-policy.js';
import { loadRecord, relaunch, saveRecord, type GuestRecord } from '../../../src/virt/qemu/launcher.js';

const root = mkdtempSync(path.join(tmpdir(), 'novamon-launch-'));
const instances = path.join(root, 'instances');
mkdirSync(instances);
afterAll(() => rmSync(root, { recursive: true, force: true }));
const policy = { emulators: ['/usr/bin/qemu-system-x86_64'], instancesPath: instances };
const NAME = 'instance-0000000a';
const argv = ['qemu-system-x86_64', '-name', NAME, '-m', '64', '-chardev', `socket,id=charmonitor,path=${instances}/${NAME}.monitor,server=on,wait=off`,
  '-mon', 'chardev=charmonitor,id=monitor,mode=control', '-chardev', `ringbuf,id=charserial0,size=65536,logfile=${instances}/${NAME}.console.log`,
  '-drive', 'file=/var/lib/images/a.raw,format=raw,if=none,id=d0', '-netdev', 'user,id=hostnet0', '-vnc', '127.0.0.1:0,to=99'];
const record = (over: Partial<GuestRecord> = {}): GuestRecord => ({ name: NAME, uuid: null, argv, exe: null, cwd: '/', recordedAt: 'now', poweredOff: true, ...over });

function stateDir(): string {
  const d = mkdtempSync(path.join(root, 'state-'));
  return d;
}

describe('launch records', () => {
  it('loads a record novamon wrote (0600 in a 0700 directory)', async () => {
    const dir = stateDir();
    await saveRecord(dir, record());
    expect(await loadRecord(dir, NAME)).toEqual(record());
  });

  it('refuses a record planted with another mode, or in a directory others can write', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, `${NAME}.json`), JSON.stringify(record({ argv: ['/bin/sh', '-c', 'id > /tmp/pwned'] })), { mode: 0o644 });
    const why: string[] = [];
    expect(await loadRecord(dir, NAME, (w) => why.push(w))).toBeNull();
    expect(why[0]).toMatch(/not written by novamon.*mode 644/);
    chmodSync(path.join(dir, `${NAME}.json`), 0o600);
    chmodSync(dir, 0o777);
    expect(await loadRecord(dir, NAME, (w) => why.push(w))).toBeNull();
    expect(why[1]).toMatch(/writable by another user/);
  });

  it('refuses a symlink planted as the record', async () => {
    const dir = stateDir();
    const elsewhere = path.join(root, 'evil.json');
    writeFileSync(elsewhere, JSON.stringify(record()), { mode: 0o600 });
    symlinkSync(elsewhere, path.join(dir, `${NAME}.json`));
    const why: string[] = [];
    expect(await loadRecord(dir, NAME, (w) => why.push(w))).toBeNull();
    expect(why[0]).toMatch(/cannot be opened safely \(ELOOP\)/);
  });

  it('never runs a foreign binary: the program is the configured emulator, not argv[0]', async () => {
    expect(await emulatorFor(null, '/tmp/evil/qemu-system-x86_64', policy)).toBe('/usr/bin/qemu-system-x86_64');
    expect(await emulatorFor(null, '/bin/sh', policy)).toBeNull();
    expect(await emulatorFor('/usr/local/bin/evil', 'qemu-system-x86_64', policy)).toBeNull();
    const err = await relaunch(record({ argv: ['/bin/sh', '-c', 'touch /tmp/novamon-pwned'] }), path.join(instances, 'x.pid'), 5000, policy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InternalError);
    expect((err as Error).message).toMatch(/\/bin\/sh is not a configured emulator/);
  });
});

describe('relaunch arguments', () => {
  it('accepts a command line as novamon and libvirt start guests', () => {
    expect(argvVerdict(argv.slice(1), policy, '/')).toBeNull();
  });

  it.each([
    [['-incoming', 'exec:sh -c id'], /-incoming is not relaunched/],
    [['-plugin', 'file=/tmp/evil.so'], /-plugin is not relaunched/],
    [['-add-fd', 'fd=3,set=1'], /-add-fd is not relaunched/],
    [['-readconfig', '/tmp/x.cfg'], /-readconfig/],
    [['-monitor', 'unix:/tmp/other.sock,server'], /outside instances_path/],
    [['-chardev', 'socket,id=m,path=/run/evil.sock,server=on'], /path=\/run\/evil.sock is outside instances_path/],
    [['-chardev', 'file,id=f,path=/etc/cron.d/evil'], /outside instances_path/],
    [['-chardev', `ringbuf,id=s,logfile=${instances}/../../etc/cron.d/x`], /outside instances_path/],
    [['-serial', '/dev/ttyS0'], /host device/],
    [['-netdev', 'tap,id=n,script=/tmp/evil.sh'], /script=\/tmp\/evil.sh runs a program/],
    [['-netdev', 'tap,id=n,helper=/tmp/evil'], /helper=/],
    [['-object', 'memory-backend-file,id=m,mem-path=/etc/shadow,size=1M'], /-object memory-backend-file/],
    [['-kernel', '/etc/shadow'], /-kernel/],
    [['-D', '/etc/cron.d/log'], /outside instances_path/],
    [['-drive', 'file=/dev/sda,driver=host_device'], /host device/],
  ])('refuses %j', (args, why) => {
    expect(argvVerdict(args, policy, '/')).toMatch(why);
  });

  it('allows tap networking without scripts', () => {
    expect(argvVerdict(['-netdev', 'tap,id=n,ifname=tap0,script=no,downscript=no'], policy, '/')).toBeNull();
  });
});
