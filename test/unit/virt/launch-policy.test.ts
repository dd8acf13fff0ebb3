import { execFileSync } from 'node:child_process';
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
const policy = { emulators: ['/usr/bin/qemu-system-x86_64'], instancesPath: instances, imagePaths: [] };
const NAME = 'instance-0000000a';
const argv = ['qemu-system-x86_64', '-name', NAME, '-m', '64', '-chardev', `socket,id=charmonitor,path=${instances}/${NAME}.monitor,server=on,wait=off`,
  '-mon', 'chardev=charmonitor,id=monitor,mode=control', '-chardev', `ringbuf,id=charserial0,size=65536,logfile=${instances}/${NAME}.console.log`,
  '-drive', `file=${instances}/${NAME}.img,format=raw,if=none,id=d0`, '-device', 'virtio-blk-pci,drive=d0,id=virtio-disk0,bootindex=1',
  '-netdev', 'user,id=hostnet0', '-device', 'virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01,romfile=', '-vnc', '127.0.0.1:0,to=99',
  '-machine', 'q35,accel=kvm:tcg', '-smp', '1', '-nodefaults', '-display', 'none', '-no-shutdown', '-device', 'VGA', '-device', 'pvpanic',
  '-action', 'panic=pause', '-device', 'isa-serial,chardev=charserial0,id=serial0', '-uuid', '00000000-0000-0000-0000-00000000000a'];
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
  it('accepts a command line as novamon and libvirt start guests', async () => {
    expect(await argvVerdict(argv.slice(1), policy, '/')).toBeNull();
  });

  it.each([
    [['-incoming', 'exec:sh -c id'], /-incoming is not relaunched/],
    [['-plugin', 'file=/tmp/evil.so'], /-plugin is not relaunched/],
    [['-add-fd', 'fd=3,set=1'], /-add-fd is not relaunched/],
    [['-readconfig', '/tmp/x.cfg'], /-readconfig/],
    [['-set', `drive.d0.file=/etc/shadow`], /-set is not relaunched/],
    [['-gdb', 'tcp::1234'], /-gdb is not relaunched/],
    [['-monitor', 'unix:/tmp/other.sock,server'], /outside instances_path/],
    [['-chardev', 'socket,id=m,path=/run/evil.sock,server=on'], /path=\/run\/evil.sock is outside instances_path/],
    [['-chardev', 'file,id=f,path=/etc/cron.d/evil'], /outside instances_path/],
    [['-chardev', `ringbuf,id=s,logfile=${instances}/../../etc/cron.d/x`], /outside instances_path/],
    [['-chardev', 'pipe,id=p,path=/tmp/p'], /-chardev pipe opens a host device/],
    [['-serial', '/dev/ttyS0'], /host device/],
    [['-netdev', 'tap,id=n,script=/tmp/evil.sh'], /script=\/tmp\/evil.sh runs a program/],
    [['-netdev', 'tap,id=n,helper=/tmp/evil'], /helper=/],
    [['-netdev', '{"type":"tap","id":"n","script":"/tmp/evil.sh"}'], /-netdev script=\/tmp\/evil.sh runs a program/],
    [['-netdev', 'user,id=n,guestfwd=tcp:10.0.2.100:1234-cmd:/bin/sh'], /guestfwd=.* can run a program/],
    [['-netdev', 'user,id=n,tftp=/etc'], /tftp=\/etc exports a host directory/],
    [['-object', 'memory-backend-file,id=m,mem-path=/etc/shadow,size=1M'], /-object memory-backend-file/],
    [['-object', '{"qom-type":"memory-backend-file","id":"m","mem-path":"/etc/shadow","size":1048576}'], /-object memory-backend-file/],
    [['-object', 'rng-random,id=r,filename=/etc/shadow'], /rng-random reads \/etc\/shadow/],
    [['-kernel', '/etc/shadow'], /-kernel \/etc\/shadow is outside instances_path and \[qemu\] relaunch_image_paths/],
    [['-D', '/etc/cron.d/log'], /outside instances_path/],
    [['-drive', 'file=/dev/sda,driver=host_device'], /host device/],
  ])('refuses %j', async (args, why) => {
    expect(await argvVerdict(args, policy, '/')).toMatch(why);
  });

  it('allows tap networking without scripts', async () => {
    expect(await argvVerdict(['-netdev', 'tap,id=n,ifname=tap0,script=no,downscript=no'], policy, '/')).toBeNull();
  });
});

describe('relaunch arguments: host files', () => {
  const images = path.join(root, 'images');
  const outside = path.join(root, 'outside');
  mkdirSync(images);
  mkdirSync(outside);
  const withImages = { ...policy, imagePaths: [images] };
  const secret = path.join(outside, 'secret.raw');
  writeFileSync(secret, 'not for guests');
  const inInstances = path.join(instances, `${NAME}.img`);
  const inImages = path.join(images, 'base.raw');
  writeFileSync(inImages, Buffer.alloc(4096));
  const linkOut = path.join(instances, 'evil.img');
  symlinkSync(secret, linkOut);
  const linkIn = path.join(instances, 'ok-link.img');
  symlinkSync(inImages, linkIn);
  const qcow = (name: string, backing: string): string => {
    const file = path.join(instances, name);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw', file, '1M']);
    return file;
  };
  const verdict = (args: string[]) => argvVerdict(args, withImages, '/');

  it('accepts an image inside instances_path and one inside a configured image directory', async () => {
    expect(await verdict(['-drive', `file=${inInstances},format=raw,if=none,id=d0`])).toBeNull();
    expect(await verdict(['-drive', `file=${inImages},format=raw,if=none,id=d1`, '-cdrom', inImages])).toBeNull();
    expect(await verdict(['-blockdev', `{"driver":"file","filename":"${inImages}","node-name":"s"}`, '-blockdev', 'driver=raw,node-name=f,file=s'])).toBeNull();
    expect(await verdict(['-drive', `file=${linkIn},format=raw`])).toBeNull();
    // Without the directory configured, the same image is refused.
    expect(await argvVerdict(['-drive', `file=${inImages},format=raw`], policy, '/')).toMatch(/outside instances_path and \[qemu\] relaunch_image_paths/);
  });

  it('accepts a qcow2 image whose backing file is inside the roots, following relative names as QEMU does', async () => {
    expect(await verdict(['-drive', `file=${qcow('overlay.qcow2', inImages)},format=qcow2`])).toBeNull();
    expect(await verdict(['-drive', `file=${qcow('overlay-rel.qcow2', `${NAME}.img`)},format=qcow2`])).toBeNull();
  });

  it.each([
    ['-drive naming /etc/shadow', ['-drive', 'file=/etc/shadow,format=raw,if=none,id=d0'], /-drive file=\/etc\/shadow is outside instances_path/],
    ['-drive file.filename= outside', ['-drive', `file.filename=${secret},format=raw`], /-drive file.filename=.* is outside/],
    ['a symlink inside instances_path pointing outside', ['-drive', `file=${linkOut},format=raw`], new RegExp(`-drive file=${linkOut} resolves to ${secret}, outside`)],
    ['the json: pseudo-protocol', ['-drive', 'file=json:{"driver":"nbd","server":{"type":"inet","host":"10.0.0.1","port":"10809"}}'], /-drive file=json:.* uses the json: pseudo-protocol/],
    ['an nbd: URI', ['-drive', 'file=nbd://10.0.0.1:10809/export,format=raw'], /-drive file=nbd:.* names a protocol \(nbd:\)/],
    ['a vvfat directory', ['-drive', 'file=fat:rw:/etc,format=raw'], /names a protocol \(fat:\)/],
    ['an nbd driver', ['-blockdev', '{"driver":"nbd","node-name":"n","server":{"type":"inet","host":"10.0.0.1","port":"10809"}}'], /-blockdev driver=nbd is not relaunched/],
    ['a child named by path, not node name', ['-blockdev', `driver=qcow2,node-name=q,file=f,backing=${secret}`], /-blockdev backing=.* is outside/],
    ['a nested http driver', ['-drive', 'file.driver=http,file.url=http://10.0.0.1/x,format=raw'], /-drive file.driver=http is not relaunched/],
    ['-blockdev JSON filename outside', ['-blockdev', `{"driver":"file","filename":"${secret}","node-name":"s"}`], /-blockdev filename=.* is outside/],
    ['-fw_cfg file=/etc/passwd', ['-fw_cfg', 'name=opt/x,file=/etc/passwd'], /-fw_cfg file=\/etc\/passwd is outside/],
    ['-cdrom outside', ['-cdrom', secret], /-cdrom .*secret.raw is outside/],
    ['-hda through a symlink', ['-hda', linkOut], /-hda .* resolves to .*secret.raw, outside/],
    ['a bare argument (QEMU takes it as the first disk)', ['-nodefaults', '/etc/shadow'], /disk image argument \/etc\/shadow is outside/],
    ['-smbios file=', ['-smbios', 'file=/etc/shadow'], /-smbios file=\/etc\/shadow is outside/],
    ['-acpitable data= list', ['-acpitable', `data=${inImages}:/etc/shadow`], /-acpitable data=\/etc\/shadow is outside/],
    ['-device loader,file=', ['-device', 'loader,file=/etc/shadow,addr=0x1000'], /-device loader,file=\/etc\/shadow is outside/],
    ['-device romfile= path', ['-device', 'virtio-net-pci,netdev=n,romfile=/etc/shadow'], /-device virtio-net-pci,romfile=\/etc\/shadow is outside/],
    ['-global romfile=', ['-global', 'virtio-net-pci.romfile=/etc/shadow'], /-global virtio-net-pci,romfile=\/etc\/shadow is outside/],
    ['a host PCI device', ['-device', 'vfio-pci,host=0000:01:00.0'], /-device vfio-pci passes a host device/],
    ['-machine dumpdtb=', ['-machine', 'q35,dumpdtb=/etc/x'], /-machine dumpdtb=\/etc\/x is not relaunched/],
    ['-machine kernel=', ['-machine', 'q35,kernel=/etc/shadow'], /-machine kernel=\/etc\/shadow is outside/],
    ['-boot splash=', ['-boot', 'menu=on,splash=/etc/shadow'], /-boot splash=\/etc\/shadow is outside/],
    ['a console log through a symlink', ['-chardev', `ringbuf,id=s,logfile=${linkOut}`], /logfile=.* resolves to .*secret.raw, outside instances_path/],
    ['an image dir for state files', ['-pidfile', path.join(images, 'x.pid')], /-pidfile .* is outside instances_path/],
    ['-audiodev on the host sound system', ['-audiodev', 'alsa,id=a'], /-audiodev alsa opens the host's sound system/],
    ['-tpmdev passthrough', ['-tpmdev', 'passthrough,id=t,path=/dev/tpm0'], /-tpmdev passthrough passes a host device/],
    ['-display on a host window', ['-display', 'gtk'], /-display gtk is not relaunched/],
  ])('refuses %s', async (_what, args, why) => {
    expect(await verdict(args)).toMatch(why);
  });

  it('refuses a qcow2 image whose header names a backing file outside, or a protocol', async () => {
    expect(await verdict(['-drive', `file=${qcow('shadow.qcow2', secret)},format=qcow2`])).toMatch(/shadow.qcow2 \(which names .*secret.raw in its header\) is outside/);
    expect(await verdict(['-drive', `file=${qcow('nbd.qcow2', 'nbd://10.0.0.1:10809/x')},format=qcow2`])).toMatch(/names nbd:\/\/10.0.0.1:10809\/x in its header, a nbd: protocol file name/);
    expect(await verdict(['-drive', `file=${qcow('chain.qcow2', path.join(instances, 'shadow.qcow2'))},format=qcow2`])).toMatch(/which names .*secret.raw in its header\) is outside/);
    const withDataFile = path.join(instances, 'data-file.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${path.join(outside, 'data.raw')}`, withDataFile, '1M']);
    expect(await verdict(['-drive', `file=${withDataFile},format=qcow2`])).toMatch(/data-file.qcow2 \(which names .*outside\/data.raw in its header\) is outside/);
  });

  it('reads a value as QEMU does: ",," is a comma inside the value, not a new key', async () => {
    writeFileSync(path.join(instances, 'a,file=x'), '');
    expect(await verdict(['-drive', `file=${instances}/a,,file=x,format=raw`])).toBeNull();
    expect(await verdict(['-drive', `id=d0,,file=${inInstances},file=/etc/shadow,format=raw`])).toMatch(/file=\/etc\/shadow is outside/);
  });

  it("accepts firmware QEMU finds in its own data directories, and an empty romfile", async () => {
    expect(await verdict(['-device', 'virtio-net-pci,netdev=n,romfile=efi-virtio.rom', '-device', 'e1000,romfile=', '-bios', 'bios-256k.bin'])).toBeNull();
    expect(await verdict(['-bios', '../../etc/shadow'])).toMatch(/-bios \.\.\/\.\.\/etc\/shadow is outside/);
  });
});
