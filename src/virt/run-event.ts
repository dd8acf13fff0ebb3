// Why a guest went down, from QEMU's own words: the QMP events SHUTDOWN, RESET, GUEST_PANICKED and
// GUEST_CRASHLOADED as the contract's GuestRunEvent. Shared by the qemu driver (its own monitor) and the
// libvirt driver (libvirt's QEMU monitor event passthrough); everything QEMU or a guest controls is checked.

import type { GuestRunEvent, GuestRunEventName } from './driver.js';

/** The subset of a QMP event the mapping needs (matches src/qmp's QmpEvent). */
export interface MonitorEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** Epoch milliseconds of a QMP event timestamp (QEMU's host clock), or `fallback` when absent. */
export function eventTimestampMs(event: MonitorEvent, fallback: number): number {
  const ts = event.timestamp;
  if (!ts || typeof ts.seconds !== 'number' || ts.seconds < 0) return fallback;
  return ts.seconds * 1000 + Math.floor((ts.microseconds ?? 0) / 1000);
}

export const GUEST_RUN_EVENTS: ReadonlySet<string> = new Set<GuestRunEventName>(['SHUTDOWN', 'RESET', 'GUEST_PANICKED', 'GUEST_CRASHLOADED']);

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * The GuestRunEvent a QMP event is, or null. The registry's own SHUTDOWN/disconnect (a dropped socket,
 * not something QEMU said) is not one. Values QEMU (or a guest through it) controls are type-checked.
 */
export function guestRunEvent(name: string, uuid: string | null, event: MonitorEvent): GuestRunEvent | null {
  if (!GUEST_RUN_EVENTS.has(event.event)) return null;
  const data = event.data ?? {};
  const reason = str(data['reason']) ?? null;
  if (event.event === 'SHUTDOWN' && reason === 'disconnect') return null;
  const info = data['info'];
  return {
    name,
    uuid,
    event: event.event as GuestRunEventName,
    reason: reason === null ? null : reason.slice(0, 64),
    guest: typeof data['guest'] === 'boolean' ? data['guest'] : null,
    action: str(data['action'])?.slice(0, 32) ?? null,
    info: info && typeof info === 'object' && !Array.isArray(info) ? (info as Record<string, unknown>) : null,
    timestamp: eventTimestampMs(event, Date.now()),
    duringOperation: false,
  };
}

/** Events arriving this long after one of our power operations ends are still its doing: QEMU's event may trail the reply. */
const OPERATION_EVENT_GRACE_MS = 1000;

/** Power operations of a driver's own in flight per guest, so the run events they cause can be marked duringOperation. */
export class OperationsInProgress {
  private readonly counts = new Map<string, number>();

  has(name: string): boolean {
    return this.counts.has(name);
  }

  /** Runs `fn` as an operation on `name`; the guest counts as operated on until a moment after it ends. */
  async during<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      setTimeout(() => {
        const left = (this.counts.get(name) ?? 1) - 1;
        if (left > 0) this.counts.set(name, left);
        else this.counts.delete(name);
      }, OPERATION_EVENT_GRACE_MS).unref();
    }
  }
}
