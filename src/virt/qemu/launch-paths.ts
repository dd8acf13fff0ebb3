// Where a relaunched QEMU may open host files. Every path in a recorded command line is resolved the way
// the kernel will resolve it for QEMU (relative to QEMU's recorded cwd, every symlink followed) and must
// land inside an allowed root: instances_path for the guest's own files (monitor socket, console log,
// pidfile), instances_path or [qemu] relaunch_image_paths for disks and files loaded into the guest. A
// disk image's header is read too: a qcow2 backing or data file it names must pass the same rule.

import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import path from 'node:path';

/** Block drivers a relaunch may use: local image formats, the local file protocol and filters. */
export const BLOCK_DRIVERS = new Set(['raw', 'qcow2', 'file', 'luks', 'vdi', 'vhdx', 'vpc', 'throttle', 'copy-on-read', 'compress', 'preallocate', 'null-co', 'null-aio']);
/** A backing chain longer than this is refused rather than followed. */
const MAX_CHAIN = 16;

export interface Roots {
  /** instances_path, resolved: the guest's own files. */
  readonly state: readonly string[];
  /** instances_path and relaunch_image_paths, resolved: disks and files loaded into the guest. */
  readonly images: readonly string[];
}

async function resolveRoot(dir: string): Promise<string> {
  return realpath(dir).catch(() => path.resolve(dir));
}

export async function resolveRoots(instancesPath: string, imagePaths: readonly string[]): Promise<Roots> {
  const state = [await resolveRoot(instancesPath)];
  const images = [...state];
  for (const d of imagePaths) if (path.isAbsolute(d)) images.push(await resolveRoot(d));
  return { state, images };
}

/**
 * Where `abs` leads once every symlink is followed. A path that does not exist yet (a pidfile, a log
 * QEMU will create) is its nearest existing ancestor, resolved, plus the missing rest, which holds no
 * symlink because it does not exist.
 */
async function resolveFully(abs: string): Promise<string> {
  let dir = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(await realpath(dir), ...rest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const parent = path.dirname(dir);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === dir) throw err;
      rest.unshift(path.basename(dir));
      dir = parent;
    }
  }
}

/** `name:` before any slash: QEMU takes it as a protocol (nbd:, http:, json:, fat:, file:, ...). */
export function protocolOf(filename: string): string | null {
  const m = /^([^/]*?):/.exec(filename);
  return m ? `${m[1] ?? ''}:` : null;
}

const rootNames = (roots: readonly string[], state: Roots): string =>
  roots === state.state ? 'instances_path' : 'instances_path and [qemu] relaunch_image_paths';

/** Why `p` (spelled `what` in the message) is refused: not resolving inside `roots`. Null when it does. */
export async function insideVerdict(p: string, which: 'state' | 'images', roots: Roots, cwd: string, what: string): Promise<string | null> {
  if (p === '') return `${what} is empty`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f]/.test(p)) return `${what} contains control characters`;
  const abs = path.resolve(cwd, p);
  let real: string;
  try {
    real = await resolveFully(abs);
  } catch (err) {
    return `${what} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const allowed = roots[which];
  if (allowed.some((r) => real.startsWith(r.endsWith(path.sep) ? r : r + path.sep))) return null;
  const where = rootNames(allowed, roots);
  return real === abs ? `${what} is outside ${where}` : `${what} resolves to ${real}, outside ${where}`;
}

type Refs = { files: string[]; backingFormat: string | null } | { refused: string };

/**
 * The files a qcow2 header names (backing file, external data file) and its backing format. Extensions
 * are read where QEMU reads them: from header_length up to the backing file name or the cluster's end.
 */
async function qcow2Refs(head: Buffer, read: (off: number, len: number) => Promise<Buffer>): Promise<Refs> {
  const version = head.readUInt32BE(4);
  const files: string[] = [];
  const backingOff = Number(head.readBigUInt64BE(8));
  const backingLen = head.readUInt32BE(16);
  if (backingOff !== 0 && backingLen > 0) files.push((await read(backingOff, Math.min(backingLen, 4096))).toString('utf8'));
  const end = backingOff !== 0 ? backingOff : 2 ** Math.min(head.readUInt32BE(20), 21);
  let backingFormat: string | null = null;
  let off = version >= 3 ? head.readUInt32BE(100) : 72;
  for (let n = 0; off + 8 <= end; n++) {
    if (n >= 1024) return { refused: 'has more qcow2 header extensions than novamon reads' };
    const ext = await read(off, 8);
    if (ext.length < 8 || ext.readUInt32BE(0) === 0) break;
    const type = ext.readUInt32BE(0);
    const len = ext.readUInt32BE(4);
    if (type === 0x44415441 || type === 0xe2792aca) {
      const data = (await read(off + 8, Math.min(len, 4096))).toString('utf8');
      if (type === 0x44415441) files.push(data);
      else backingFormat = data;
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
  return { files, backingFormat };
}

/** What an image's first bytes say QEMU would open besides the image: the named files, or a refusal. */
async function imageRefs(file: string): Promise<Refs> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { refused: 'is not a regular file' };
    const read = async (off: number, len: number): Promise<Buffer> => {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, off);
      return buf.subarray(0, bytesRead);
    };
    const head = await read(0, 104);
    const magic = head.length >= 4 ? head.readUInt32BE(0) : 0;
    if (magic === 0x514649fb && head.length >= 104 && head.readUInt32BE(4) >= 2) return await qcow2Refs(head, read);
    if (magic === 0x514649fb) return { refused: 'is a qcow (version 1) image, whose backing file novamon does not check' };
    if (magic === 0x51454400 && head.length >= 24 && (head.readBigUInt64LE(16) & 1n) !== 0n) return { refused: 'is a QED image with a backing file, which novamon does not check' };
    if (magic === 0x4b444d56 || magic === 0x434f5744 || head.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile') {
      return { refused: 'is a VMDK image, whose extent files novamon does not check' };
    }
    return { files: [], backingFormat: null };
  } finally {
    await fh.close();
  }
}

/**
 * Why the disk image `p` is refused: outside the image roots, or naming (in its header, as QEMU would
 * follow it) a backing or data file that is a protocol, outside the roots, or itself refused.
 */
export async function imageVerdict(p: string, roots: Roots, cwd: string, what: string, depth = 0): Promise<string | null> {
  const outside = await insideVerdict(p, 'images', roots, cwd, what);
  if (outside !== null) return outside;
  const abs = path.resolve(cwd, p);
  let refs;
  try {
    refs = await imageRefs(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A missing image fails QEMU's own open; there is nothing for it to follow.
    return code === 'ENOENT' ? null : `${what} cannot be read (${code ?? 'error'})`;
  }
  if ('refused' in refs) return `${what} ${refs.refused}`;
  if (refs.backingFormat !== null && !BLOCK_DRIVERS.has(refs.backingFormat)) return `${what} names backing format ${refs.backingFormat}, which is not relaunched`;
  for (const ref of refs.files) {
    const proto = protocolOf(ref);
    if (proto !== null) return `${what} names ${ref} in its header, a ${proto} protocol file name`;
    if (depth >= MAX_CHAIN) return `${what} has a backing chain longer than ${MAX_CHAIN}`;
    // QEMU resolves a relative backing name against the directory of the image as it was named.
    const why = await imageVerdict(ref, roots, path.dirname(abs), `${what} (which names ${ref} in its header)`, depth + 1);
    if (why !== null) return why;
  }
  return null;
}
