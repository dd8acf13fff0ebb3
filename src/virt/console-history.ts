// The serial console across relaunches. The qemu driver relaunches a powered-off guest with its chardev
// log appended to (launcher.ts), so what earlier boots printed stays in front of the new boot's lines,
// as under libvirt's virtlogd; Nova's libvirt driver, by contrast, starts each boot on an empty log.
// Appending alone would let the log grow with every boot: before each relaunch the file is cut to its
// last CONSOLE_HISTORY_BYTES, replaced atomically (a new file renamed over it, never written through a
// path the guest's QEMU could have swapped for a symlink).

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { readTail } from './console-log.js';
import { MAX_CONSOLE_BYTES } from './driver.js';

/** How much of the earlier boots' console a log keeps when the guest starts again. */
export const CONSOLE_HISTORY_BYTES = MAX_CONSOLE_BYTES;

/** The tail of `bytes`, at most `max` bytes, starting after a newline when one is near the cut. */
export function tailAtLine(bytes: Buffer, max: number): Buffer {
  if (bytes.length <= max) return bytes;
  const cut = bytes.subarray(bytes.length - max);
  const nl = cut.indexOf(0x0a);
  return nl >= 0 && nl < 256 ? cut.subarray(nl + 1) : cut;
}

/**
 * Before a relaunch: cuts each console log to its last `max` bytes (whole lines). A log that is absent,
 * small enough, or not a regular file is left alone; a failure is logged and never stops the relaunch.
 */
export async function capConsoleLogs(logFiles: readonly string[], log: Logger, max = CONSOLE_HISTORY_BYTES): Promise<void> {
  for (const file of logFiles) {
    try {
      await capOne(file, max);
    } catch (err) {
      log.warn({ err, file }, 'console log not capped before the relaunch');
    }
  }
}

async function capOne(file: string, max: number): Promise<void> {
  // One byte more than the cap tells "over the cap" from "exactly at it" without reading the whole file.
  const probe = readTail(file, max + 1);
  if (!probe || probe.length <= max) return;
  const kept = tailAtLine(probe, max);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o640);
  try {
    await fh.writeFile(kept);
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
