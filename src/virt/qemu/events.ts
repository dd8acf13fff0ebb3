// Maps QMP events to Nova lifecycle transitions. QEMU's events need context: with -no-shutdown a guest
// power-off sends SHUTDOWN then STOP (not a pause), a `quit` sends SHUTDOWN and then the socket drops
// (a second, synthesised SHUTDOWN), and RESUME means "started" after a shutdown but "resumed" after a pause.

import type { LifecycleTransition } from '../driver.js';
import { PowerState } from '../power-state.js';

/** The subset of a QMP event the mapping needs (matches src/qmp's QmpEvent). */
export interface MonitorEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface MappedTransition {
  transition: LifecycleTransition;
  powerState: PowerState;
  source: string;
}

/**
 * The lifecycle transition an event means, given the guest's last known power state; null when the
 * event is not a transition (RESET, POWERDOWN, ...) or repeats the state we already reported.
 */
export function transitionFor(event: MonitorEvent, previous: PowerState | undefined): MappedTransition | null {
  const reason = typeof event.data?.['reason'] === 'string' ? event.data['reason'] : undefined;
  const source = reason ? `${event.event}/${reason}` : event.event;
  switch (event.event) {
    case 'STOP':
      // After SHUTDOWN or a panic QEMU stops the vCPUs; the guest is off or crashed, not paused.
      if (previous === PowerState.SHUTDOWN || previous === PowerState.CRASHED || previous === PowerState.PAUSED) return null;
      return { transition: 'paused', powerState: PowerState.PAUSED, source };
    case 'RESUME': {
      if (previous === PowerState.RUNNING) return null;
      const fromOff = previous === PowerState.SHUTDOWN || previous === PowerState.CRASHED || previous === PowerState.NOSTATE;
      return { transition: fromOff ? 'started' : 'resumed', powerState: PowerState.RUNNING, source };
    }
    case 'WAKEUP':
      return previous === PowerState.RUNNING ? null : { transition: 'resumed', powerState: PowerState.RUNNING, source };
    case 'SHUTDOWN':
      if (previous === PowerState.SHUTDOWN) return null;
      return { transition: 'stopped', powerState: PowerState.SHUTDOWN, source };
    case 'SUSPEND':
      return previous === PowerState.SUSPENDED ? null : { transition: 'suspended', powerState: PowerState.SUSPENDED, source };
    case 'GUEST_PANICKED':
      return previous === PowerState.CRASHED ? null : { transition: 'crashed', powerState: PowerState.CRASHED, source };
    default:
      return null;
  }
}

/** Epoch milliseconds of a QMP event timestamp (QEMU's host clock), or `fallback` when absent. */
export function eventTimestampMs(event: MonitorEvent, fallback: number): number {
  const ts = event.timestamp;
  if (!ts || typeof ts.seconds !== 'number' || ts.seconds < 0) return fallback;
  return ts.seconds * 1000 + Math.floor((ts.microseconds ?? 0) / 1000);
}

/**
 * The transition between two observed power states, for changes we notice by looking rather than by
 * an event (a guest reconnected after it was started elsewhere, a relaunch, a quit whose event was lost).
 */
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
