// Relaunch rules for the options that define backends and devices (-drive, -blockdev, -device, -global,
// -chardev and the legacy chardev options, -netdev/-net/-nic, -object, -audiodev, -tpmdev): each names the
// key=value pairs that reach host files, devices, programs or fds, and checks or refuses them.

import { BLOCK_DRIVERS, protocolOf } from './launch-paths.js';
import { get, leaf, parseJsonOrOpts, parseOpts, type Pair } from './launch-opts.js';

/** How a rule checks a host path; each returns why it is refused, or null. */
export interface RuleContext {
  /** Inside instances_path (the guest's own sockets, logs, pidfile). */
  state(p: string, what: string): Promise<string | null>;
  /** Inside instances_path or relaunch_image_paths (a file loaded into the guest). */
  load(p: string, what: string): Promise<string | null>;
  /** A disk image: no protocol, inside the image roots, and its header's backing/data files too. */
  image(p: string, what: string): Promise<string | null>;
  /** A firmware file QEMU also looks up in its data directories: a bare name is QEMU's own, else `load`. */
  firmware(p: string, what: string): Promise<string | null>;
}

export type Rule = (value: string, ctx: RuleContext, opt: string) => Promise<string | null>;

const HOST_DEVICE_DRIVERS = new Set(['host_device', 'host_cdrom', 'nvme', 'nvme-io_uring', 'vvfat', 'vfio-pci']);

function parsed(opt: string, value: string, impliedKey?: string): Pair[] | string {
  const pairs = parseJsonOrOpts(value, impliedKey);
  return typeof pairs === 'string' ? `${opt} ${value} ${pairs}` : pairs;
}

async function firstRefusal(checks: Iterable<() => Promise<string | null> | string | null>): Promise<string | null> {
  for (const check of checks) {
    const why = await check();
    if (why !== null) return why;
  }
  return null;
}

function blockDriverVerdict(opt: string, key: string, driver: string): string | null {
  if (BLOCK_DRIVERS.has(driver)) return null;
  if (HOST_DEVICE_DRIVERS.has(driver)) return `${opt} ${key}=${driver} uses a host device`;
  return `${opt} ${key}=${driver} is not relaunched (block drivers allowed: ${[...BLOCK_DRIVERS].join(', ')})`;
}

const CHILD_KEYS = new Set(['file', 'backing', 'data-file']);

/** A child given as a string that cannot be a node name (ids never hold a slash): checked as a file to be safe. */
function notANodeName(key: string, value: string): boolean {
  return CHILD_KEYS.has(leaf(key)) && value !== 'null' && !/^[A-Za-z][A-Za-z0-9._-]*$/.test(value);
}

/**
 * -drive and -blockdev: every driver/format (at any depth) a local one, every file name (-drive file=,
 * any *.filename=) a plain path to an image inside the image roots. Drivers are checked first so a host
 * device is named as such. A string `file`/`backing`/`data-file` below the top is a node reference, unless
 * it cannot be one.
 */
export const blockRule: Rule = async (value, ctx, opt) => {
  const pairs = opt === '-drive' ? parseOpts(value) : parsed(opt, value, 'driver');
  if (typeof pairs === 'string') return pairs;
  for (const [k, v] of pairs) {
    if (leaf(k) === 'driver' || (opt === '-drive' && k === 'format')) {
      const why = blockDriverVerdict(opt, k, v);
      if (why !== null) return why;
    }
  }
  return firstRefusal(
    pairs
      .filter(([k, v]) => v !== '' && (leaf(k) === 'filename' || (opt === '-drive' && k === 'file') || notANodeName(k, v)))
      .map(([k, v]) => () => {
        const what = `${opt} ${k}=${v}`;
        const proto = protocolOf(v);
        if (proto === 'json:') return `${what} uses the json: pseudo-protocol`;
        if (proto !== null) return `${what} names a protocol (${proto}), not a local image`;
        return ctx.image(v, what);
      }),
  );
};

/** A disk given as a bare file name (-hda, -cdrom, -sd, -pflash, ..., or an argument that is not an option). */
export const imageRule: Rule = async (value, ctx, opt) => {
  const what = `${opt} ${value}`;
  const proto = protocolOf(value);
  if (proto !== null) return proto === 'json:' ? `${what} uses the json: pseudo-protocol` : `${what} names a protocol (${proto}), not a local image`;
  return ctx.image(value, what);
};

/** Device models that hand the guest a host device or a host directory, whatever their properties say. */
const DEVICE_DENIED = /^(vfio-|vhost-scsi|vhost-vsock|vhost-vdpa|xen-|spapr-vfio|virtio-9p|vhost-user-fs)|^(usb-host|u2f-passthru|pci-assign|kvm-pci-assign|scsi-block|scsi-generic|usb-mtp|ccid-card-emulated|ivshmem)$/;
/** Device properties that name a host device, host address, directory or fd. */
const DEVICE_KEYS_DENIED = new Set(['sysfsdev', 'host', 'hostbus', 'hostaddr', 'hostport', 'hostdevice', 'hidraw', 'vhostdev', 'vhostfd', 'vhostfds', 'fd', 'fds', 'rootdir', 'path', 'filename', 'logfile', 'shm']);

/** The checks for one device model's pairs (shared by -device and -global). */
export async function devicePairsVerdict(opt: string, driver: string, pairs: readonly (readonly [string, string])[], ctx: RuleContext): Promise<string | null> {
  if (DEVICE_DENIED.test(driver)) return `${opt} ${driver} passes a host device or directory to the guest`;
  return firstRefusal(
    pairs.map(([k, v]) => () => {
      const what = `${opt} ${driver},${k}=${v}`;
      if (DEVICE_KEYS_DENIED.has(leaf(k))) return `${what} names a host device, directory or fd`;
      if (k === 'romfile') return v === '' ? null : ctx.firmware(v, what);
      if (k === 'file' || k === 'kernel' || k === 'initrd') return ctx.load(v, what);
      return null;
    }),
  );
}

export const deviceRule: Rule = async (value, ctx, opt) => {
  const pairs = parsed(opt, value, 'driver');
  if (typeof pairs === 'string') return pairs;
  return devicePairsVerdict(opt, get(pairs, 'driver') ?? '', pairs.filter(([k]) => k !== 'driver'), ctx);
};

/** -global DRIVER.PROP=VALUE or -global driver=D,property=P,value=V: the device rules on that one property. */
export const globalRule: Rule = async (value, ctx, opt) => {
  if (/^driver=/.test(value)) {
    const pairs = parseOpts(value);
    return devicePairsVerdict(opt, get(pairs, 'driver') ?? '', [[get(pairs, 'property') ?? '', get(pairs, 'value') ?? '']], ctx);
  }
  const m = /^([^.=]*)\.([^=]*)=(.*)$/s.exec(value);
  if (!m) return `${opt} ${value} is not DRIVER.PROPERTY=VALUE`;
  return devicePairsVerdict(opt, m[1] ?? '', [[m[2] ?? '', m[3] ?? '']], ctx);
};

/** Chardev backends that stay inside QEMU or the network: the rest open host devices, pipes or displays. */
const CHARDEV_BACKENDS = new Set(['socket', 'udp', 'file', 'null', 'ringbuf', 'memory', 'pty', 'vc', 'msmouse', 'wctablet', 'testdev']);

/** Keys of chardev-like options that name a host path (kept inside instances_path) or take an fd. */
async function chardevPairsVerdict(opt: string, pairs: readonly Pair[], ctx: RuleContext): Promise<string | null> {
  return firstRefusal(
    pairs.map(([k, v]) => () => {
      const l = leaf(k);
      if (l === 'fd' || l === 'fds') return `${opt} ${k}=${v} takes an fd`;
      if (l === 'path' || l === 'logfile' || l === 'input-path') return ctx.state(v, `${opt} ${k}=${v}`);
      return null;
    }),
  );
}

export const chardevRule: Rule = async (value, ctx, opt) => {
  const pairs = parseOpts(value, 'backend');
  const backend = get(pairs, 'backend') ?? '';
  if (!CHARDEV_BACKENDS.has(backend)) return `${opt} ${backend} opens a host device, pipe or display`;
  return chardevPairsVerdict(opt, pairs, ctx);
};

/** -serial, -parallel, -monitor, -qmp, -debugcon: QEMU's legacy chardev spellings. */
export const legacyChardevRule: Rule = async (value, ctx, opt) => {
  const v = value.startsWith('mon:') ? value.slice(4) : value;
  if (/^(none|null|pty|msmouse|wctablet|testdev|vc(:[0-9x]+C?)?|chardev:[A-Za-z0-9._-]+)$/.test(v)) return null;
  if (v.startsWith('/dev/') || /^(pipe|braille|tty|parport|serial|spicevmc|spiceport|stdio|dbus)(:|$)/.test(v)) return `${opt} ${v} opens a host device or pipe`;
  if (v.startsWith('file:')) return ctx.state(v.slice(5), `${opt} ${v}`);
  if (v.startsWith('unix:')) return chardevPairsVerdict(opt, parseOpts(v.slice(5), 'path'), ctx);
  if (/^(tcp|telnet|tn3270|websocket|udp):/.test(v)) return chardevPairsVerdict(opt, parseOpts(v.slice(v.indexOf(':') + 1), 'host'), ctx);
  return `${opt} ${v} is not a chardev novamon relaunches`;
};

const NETDEV_TYPES = new Set(['user', 'tap', 'socket', 'stream', 'dgram', 'hubport', 'vhost-user', 'nic', 'none']);
/** Network keys that run a program, take an fd, or expose a host directory to the guest. */
const NETDEV_KEYS_DENIED: Record<string, string> = {
  helper: 'runs a program', smb: 'runs a program (smbd) on a host directory', guestfwd: 'can run a program',
  fd: 'takes an fd', fds: 'takes an fd', vhostfd: 'takes an fd', vhostfds: 'takes an fd', sock: 'takes a host socket',
  vhostdev: 'opens a host device', tftp: 'exports a host directory to the guest', bootfile: 'exports a host file to the guest',
};

/** -netdev, -net, -nic: local backends only, no scripts other than `no`, no fds, socket paths in instances_path. */
export const netRule: Rule = async (value, ctx, opt) => {
  const pairs = parsed(opt, value, 'type');
  if (typeof pairs === 'string') return pairs;
  const type = get(pairs, 'type') ?? '';
  if (!NETDEV_TYPES.has(type)) return `${opt} ${type} is not relaunched (network backends allowed: ${[...NETDEV_TYPES].join(', ')})`;
  return firstRefusal(
    pairs.map(([k, v]) => () => {
      const l = leaf(k);
      const denied = NETDEV_KEYS_DENIED[l];
      if (denied !== undefined) return `${opt} ${k}=${v} ${denied}`;
      if ((l === 'script' || l === 'downscript') && v !== 'no') return `${opt} ${k}=${v} runs a program`;
      if (l === 'path') return ctx.state(v, `${opt} ${k}=${v}`);
      return null;
    }),
  );
};

const OBJECT_TYPES_ALLOWED = new Set(['iothread', 'rng-builtin', 'rng-random', 'memory-backend-ram', 'memory-backend-memfd', 'throttle-group']);

/** -object: types that hold no host file, and an rng-random only of /dev/random or /dev/urandom. */
export const objectRule: Rule = async (value, _ctx, opt) => {
  const pairs = parsed(opt, value, 'qom-type');
  if (typeof pairs === 'string') return pairs;
  const type = get(pairs, 'qom-type') ?? '';
  if (!OBJECT_TYPES_ALLOWED.has(type)) return `${opt} ${type} is not relaunched`;
  for (const [k, v] of pairs) {
    if (type === 'rng-random' && k === 'filename') {
      if (v !== '/dev/random' && v !== '/dev/urandom') return `${opt} rng-random reads ${v}, not /dev/random or /dev/urandom`;
    } else if (['filename', 'mem-path', 'path', 'file', 'fd'].includes(leaf(k))) {
      return `${opt} ${type},${k}=${v} names a host file or fd`;
    }
  }
  return null;
};

/** -audiodev / -audio: no sound (none) or a wav file inside instances_path; host sound systems are refused. */
export const audioRule: Rule = async (value, ctx, opt) => {
  const pairs = parsed(opt, value, 'driver');
  if (typeof pairs === 'string') return pairs;
  const driver = get(pairs, 'driver') ?? '';
  if (driver !== 'none' && driver !== 'wav') return `${opt} ${driver} opens the host's sound system`;
  const file = get(pairs, 'path');
  return driver === 'wav' ? ctx.state(file ?? 'qemu.wav', `${opt} wav,path=${file ?? 'qemu.wav'}`) : null;
};

/** -tpmdev: the swtpm emulator over a chardev (checked as a chardev); passthrough of the host TPM is refused. */
export const tpmRule: Rule = async (value, _ctx, opt) => {
  const type = get(parseOpts(value, 'type'), 'type') ?? '';
  return type === 'emulator' ? null : `${opt} ${type} passes a host device to the guest`;
};
