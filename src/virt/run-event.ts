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
