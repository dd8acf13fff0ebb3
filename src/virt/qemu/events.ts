// What QMP events mean for a guest's run state. QEMU's events need context: with -no-shutdown a guest
// power-off sends SHUTDOWN then STOP (the guest is off, not paused), a reset of a stopped guest leaves it in
// `prelaunch` without another event, and a STOP after BLOCK_IO_ERROR or WATCHDOG is an io-error or watchdog stop.

import type { LifecycleTransition } from '../driver.js';
import type { MonitorEvent } from '../run-event.js';
import { PowerState } from '../power-state.js';

export { eventTimestampMs, guestRunEvent, type MonitorEvent } from '../run-event.js';

/** Events that change (or may change) the run state. */
export const RUN_STATE_EVENTS = new Set(['STOP', 'RESUME', 'SHUTDOWN', 'RESET', 'SUSPEND', 'SUSPEND_DISK', 'WAKEUP', 'GUEST_PANICKED', 'WATCHDOG', 'BLOCK_IO_ERROR']);

/** Run states in which the vCPUs are already stopped for a reason a later STOP must not overwrite. */
const STOPPED_FOR_GOOD = new Set(['shutdown', 'guest-panicked', 'internal-error']);

export interface RunStateStep {
  /** QEMU's run state after the event. */
  status: string;
  /** The state the next STOP puts the guest in (io-error, watchdog), or null for plain `paused`. */
  stopAs: string | null;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * The run state after `event`, given the state before it and what a pending STOP means. Mirrors QEMU's
 * runstate transitions (runstate.c, main_loop_should_exit) for the events it sends.
 */
export function runStateAfter(status: string, stopAs: string | null, event: MonitorEvent): RunStateStep {
  const action = str(event.data?.['action']);
  switch (event.event) {
    case 'STOP':
      return { status: STOPPED_FOR_GOOD.has(status) ? status : (stopAs ?? 'paused'), stopAs: null };
    case 'RESUME':
    case 'WAKEUP':
      return { status: 'running', stopAs: null };
    case 'SHUTDOWN':
      return { status: 'shutdown', stopAs: null };
    case 'SUSPEND':
      return { status: 'suspended', stopAs: null };
    case 'RESET':
      // After a reset QEMU runs on only if it was running; anything else waits in prelaunch for `cont`.
      return { status: status === 'running' || status === 'inmigrate' || status === 'finish-migrate' ? status : 'prelaunch', stopAs };
    case 'GUEST_PANICKED':
      // action "pause" stops in guest-panicked; "poweroff" is followed by SHUTDOWN; "run" keeps running.
      return action === 'run' ? { status, stopAs } : { status: action === 'pause' || action === undefined ? 'guest-panicked' : status, stopAs };
    case 'WATCHDOG':
      return { status, stopAs: action === 'pause' ? 'watchdog' : stopAs };
    case 'BLOCK_IO_ERROR':
      return { status, stopAs: action === 'stop' ? 'io-error' : stopAs };
    default:
      return { status, stopAs };
  }
}

/** Nova's lifecycle transition between two power states (null when there is none to report). */
export function transitionBetween(previous: PowerState | undefined, next: PowerState): LifecycleTransition | null {
  if (previous === next) return null;
  switch (next) {
    case PowerState.RUNNING:
      return previous === PowerState.PAUSED || previous === PowerState.SUSPENDED ? 'resumed' : 'started';
    case PowerState.PAUSED:
      return 'paused';
    case PowerState.SHUTDOWN:
      return 'stopped';
    case PowerState.CRASHED:
      return 'crashed';
    case PowerState.SUSPENDED:
      return 'suspended';
    default:
      return null;
  }
}
