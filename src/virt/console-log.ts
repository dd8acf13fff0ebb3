// Reading a guest's serial console log as Nova's libvirt driver does: the last MAX_CONSOLE_BYTES of
// the file, never consuming it. Shared by the qemu and libvirt drivers.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { MAX_CONSOLE_BYTES } from './driver.js';

/**
 * The last `max` bytes of a file, or null when it does not exist. Synchronous on purpose: a local log
 * file of at most 100 KiB is read from the page cache in microseconds, while four thread-pool round
 * trips (open, stat, read, close) cost far more than the read itself on the get_console_output path.
 */
export function readTail(file: string, max = MAX_CONSOLE_BYTES): Buffer | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = fstatSync(fd);
    const length = Math.min(size, max);
    const buf = Buffer.allocUnsafe(length);
    const bytesRead = readSync(fd, buf, 0, length, size - length);
    return buf.subarray(0, bytesRead);
  } finally {
    closeSync(fd);
  }
}
