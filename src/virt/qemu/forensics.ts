// What the qemu driver reads or does through a guest's monitor for forensics: its screen (screendump
// into novamon's own directory, see screendump.ts) and an NMI for Nova's trigger_crash_dump.

import path from 'node:path';
import * as qmp from '../../qmp/commands.js';
import { ConsoleNotAvailable, InstanceNotRunning, InternalError, MonitorCommandFailed } from '../../exception.js';
import { BadScreendump, type Screenshot } from '../screenshot.js';
import { GuestOffline } from './errors.js';
import type { QemuGuest } from './guest.js';
import { takeScreendump } from './screendump.js';

/** The guest's screen as PNG; the screendump file lives in `<stateDir>/screendumps` for a moment. */
export async function guestScreenshot(g: QemuGuest, stateDir: string): Promise<Screenshot> {
  if (!(await g.socketExists())) throw await g.notRunning();
  try {
    return await takeScreendump(g.exec, path.join(stateDir, 'screendumps'));
  } catch (err) {
    // "There is no QemuConsole I can screendump from.": a guest without a display device.
    if (err instanceof MonitorCommandFailed && /no QemuConsole|no surface|no console/i.test(err.message)) {
      throw new ConsoleNotAvailable();
    }
    if (err instanceof BadScreendump) throw new InternalError(`screendump of ${g.name} refused: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Nova's trigger_crash_dump on libvirt injects an NMI; a guest that is not running (no QEMU, or QEMU
 * left in `shutdown` by -no-shutdown) raises InstanceNotRunning, as libvirt's OPERATION_INVALID does.
 */
export async function guestTriggerCrashDump(g: QemuGuest): Promise<void> {
  const status = await g.status();
  if (status === 'offline') throw await g.notRunning();
  if (status === 'shutdown') throw new InstanceNotRunning(g.errorId);
  try {
    await qmp.injectNmi(g.exec);
  } catch (err) {
    if (err instanceof GuestOffline) throw await g.notRunning();
    throw err;
  }
}
