// Maps libvirt's domain lifecycle events (virDomainEventType + detail) to the contract's LifecycleEvent,
// the way nova/virt/libvirt/host.py does: SUSPENDED is Nova's "paused", PMSUSPENDED its "suspended".
// Events Nova does not act on (DEFINED, UNDEFINED, the SHUTDOWN notice before STOPPED) yield null.

import type { LifecycleEvent, LifecycleTransition } from '../driver.js';
import { PowerState } from '../power-state.js';
import { DomainEvent, StoppedDetail } from './protocol.js';

const EVENT_NAMES = ['DEFINED', 'UNDEFINED', 'STARTED', 'SUSPENDED', 'RESUMED', 'STOPPED', 'SHUTDOWN', 'PMSUSPENDED', 'CRASHED'];
const STOPPED_DETAILS = ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from-snapshot'];

/** libvirt's names for a lifecycle event and its detail (STOPPED/shutdown, CRASHED/0, ...). */
export function lifecycleNames(event: number, detail: number): { event: string; detail: string } {
  return {
    event: EVENT_NAMES[event] ?? String(event),
    detail: event === DomainEvent.STOPPED ? (STOPPED_DETAILS[detail] ?? String(detail)) : String(detail),
  };
}

export function lifecycleEventFromLibvirt(name: string, uuid: string | null, event: number, detail: number, timestamp: number): LifecycleEvent | null {
  let transition: LifecycleTransition;
  let powerState: PowerState;
  switch (event) {
    case DomainEvent.STARTED:
      [transition, powerState] = ['started', PowerState.RUNNING];
      break;
    case DomainEvent.SUSPENDED:
      [transition, powerState] = ['paused', PowerState.PAUSED];
      break;
    case DomainEvent.RESUMED:
      [transition, powerState] = ['resumed', PowerState.RUNNING];
      break;
    case DomainEvent.STOPPED:
      [transition, powerState] = detail === StoppedDetail.CRASHED ? ['crashed', PowerState.CRASHED] : ['stopped', PowerState.SHUTDOWN];
      break;
    case DomainEvent.PMSUSPENDED:
      [transition, powerState] = ['suspended', PowerState.SUSPENDED];
      break;
    case DomainEvent.CRASHED:
      [transition, powerState] = ['crashed', PowerState.CRASHED];
      break;
    default:
      return null;
  }
  const names = lifecycleNames(event, detail);
  return { name, uuid, transition, powerState, timestamp, source: `libvirt:${names.event}/${names.detail}` };
}
