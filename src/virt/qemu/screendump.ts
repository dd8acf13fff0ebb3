// `screendump` for the qemu driver: QEMU writes the guest's screen to a file we name, inside a
// directory only novamon writes to (mode 0700 under the driver's state directory). The file is opened
// without following links, must be a regular file with one link and at most MAX_SCREENDUMP_BYTES, is
// read through the descriptor we checked, and is removed whatever happens.

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import * as qmp from '../../qmp/commands.js';
import { BadScreendump, MAX_SCREENDUMP_BYTES, screenshotFromPpm, type Screenshot } from '../screenshot.js';

export type MonitorExec = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

/** Asks QEMU for a PPM screendump into `dir` and returns it as PNG. */
export async function takeScreendump(exec: MonitorExec, dir: string, maxBytes = MAX_SCREENDUMP_BYTES): Promise<Screenshot> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const file = path.join(dir, `screendump-${randomBytes(12).toString('hex')}.ppm`);
  try {
    await qmp.screendump(exec, file);
    return screenshotFromPpm(await readCapped(file, maxBytes));
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

/** Reads a file QEMU wrote: no symlinks, no FIFOs or devices, no hard links, size-capped. */
export async function readCapped(file: string, maxBytes: number): Promise<Buffer> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BadScreendump('screendump is not a regular file');
    if (st.nlink !== 1) throw new BadScreendump('screendump has more than one link');
    if (st.size > maxBytes) throw new BadScreendump(`screendump is ${st.size} bytes, over the ${maxBytes}-byte cap`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    return buf.subarray(0, off);
  } finally {
    await fh.close();
  }
}
