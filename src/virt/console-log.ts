// Reading a guest's serial console log as Nova's libvirt driver does: the last MAX_CONSOLE_BYTES of
// the file, never consuming it. Shared by the qemu and libvirt drivers. The file lives in a directory a
// guest's QEMU can write to, so it is opened without following symlinks and read only if it is a
// regular file: a symlink to a secret, a FIFO or a device planted there is refused, never read.

import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { ConsoleNotAvailable } from '../exception.js';
import { MAX_CONSOLE_BYTES } from './driver.js';

/** A console log path that is there but is not a plain file (symlink, FIFO, socket, device, directory). */
export class UnsafeConsoleLog extends Error {
  constructor(
    readonly file: string,
    readonly kind: string,
  ) {
    super(`console log ${file} is a ${kind}, not a regular file: refused`);
  }
}

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, in the event loop.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

function kindOf(st: { isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isDirectory()) return 'directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device';
  return 'special file';
}

/**
 * The last `max` bytes of a regular file, or null when it does not exist. Throws ConsoleNotAvailable
 * (caused by UnsafeConsoleLog) for anything else at that path. Synchronous on purpose: once the file is
 * known to be a regular file nothing here can wait on another process (the open cannot block, a read of at
 * most 100 KiB comes from the page cache in microseconds), while four thread-pool round trips (open,
 * stat, read, close) cost far more than the read itself on the get_console_output path.
 */
export function readTail(file: string, max = MAX_CONSOLE_BYTES): Buffer | null {
  // lstat first so a device node is never opened (opening some devices has side effects); the fstat
  // below closes the race with a file swapped in between.
  let pre;
  try {
    pre = lstatSync(file);
  } catch {
    return null;
  }
  if (!pre.isFile()) throw new ConsoleNotAvailable({ cause: new UnsafeConsoleLog(file, kindOf(pre)) });
  let fd: number;
  try {
    fd = openSync(file, OPEN_FLAGS);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // ELOOP: the path became a symlink after the lstat.
    throw new ConsoleNotAvailable({ cause: new UnsafeConsoleLog(file, 'symbolic link or unreadable file') });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.ino !== pre.ino || st.dev !== pre.dev) {
      throw new ConsoleNotAvailable({ cause: new UnsafeConsoleLog(file, st.isFile() ? 'file swapped while opening' : kindOf(st)) });
    }
    const length = Math.min(st.size, max);
    const buf = Buffer.allocUnsafe(length);
    const bytesRead = readSync(fd, buf, 0, length, st.size - length);
    return buf.subarray(0, bytesRead);
  } finally {
    closeSync(fd);
  }
}
