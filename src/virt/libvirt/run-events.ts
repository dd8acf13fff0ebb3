// Why a libvirt guest went down: QEMU's SHUTDOWN, RESET, GUEST_PANICKED and GUEST_CRASHLOADED relayed by
// libvirt's monitor event passthrough, with QEMU's reason and guest flag; where libvirtd refuses the
// passthrough, the same four derived from its lifecycle and reboot events (no QEMU reason then). Also keeps
// each domain's last state-change reason, which /metrics reports.

import type { Logger } from '../../logging.js';
import type { GuestRunEvent, GuestRunEventListener, StateReason } from '../driver.js';
import { GUEST_RUN_EVENTS, guestRunEvent, OperationsInProgress } from '../run-event.js';
import type { EventMessage, LifecycleMessage, MonitorEventMessage } from './event-messages.js';
import { lifecycleNames } from './events.js';
import type { RunEventSource } from './host.js';
import { CrashedDetail, DomainEvent, ShutdownDetail, uuidToString } from './protocol.js';

/** The monitor events libvirtd is asked to relay (a regular expression it applies). */
export const RUN_EVENT_PATTERN = `^(${[...GUEST_RUN_EVENTS].join('|')})$`;

interface DomainRun {
  reason: StateReason;
  /** QEMU said the guest shut down or panicked since it last started: libvirt's STOPPED says less. */
  downByMonitor: boolean;
  /** QEMU sent SHUTDOWN since the guest last ran: a second one is libvirt carrying out on_poweroff. */
  shutDown: boolean;
}

function parseDetails(details: string | null): Record<string, unknown> {
  if (details === null) return {};
  try {
    const data: unknown = JSON.parse(details);
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export class LibvirtRunEvents {
  private readonly listeners = new Set<GuestRunEventListener>();
  private readonly operations = new OperationsInProgress();
  /** Per domain we were told about (names the template accepts only); dropped when the domain is undefined. */
  private readonly runs = new Map<string, DomainRun>();

  constructor(
    /** Where the live connection's run events come from. */
    private readonly source: () => RunEventSource | null,
    /** Whether a domain name is one of ours (instance_name_template). */
    private readonly accepts: (name: string) => boolean,
    private readonly log: Logger,
  ) {}

  onRunEvent(listener: GuestRunEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs a power operation of ours on `name`; run events meanwhile (and for a second after) are marked as its doing. */
  during<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.operations.during(name, fn);
  }

  /**
   * The event that last changed the domain's run state; `connect` (at the time it was first asked) when
   * none has come since the driver subscribed. Callers pass only names the template accepts.
   */
  reason(name: string): StateReason {
    return this.entry(name).reason;
  }

  /** Every event message of the subscribed connection goes through here. */
  handle(m: EventMessage): void {
    if (!this.accepts(m.domain.name)) return;
    const uuid = uuidToString(m.domain.uuid);
    let run: GuestRunEvent | null = null;
    if (m.kind === 'monitor') run = this.fromMonitor(m, uuid);
    else if (m.kind === 'lifecycle') run = this.fromLifecycle(m, uuid);
    else if (m.kind === 'reboot' && this.source() === 'lifecycle') run = this.fallback(m.domain.name, uuid, 'RESET', null);
    if (!run) return;
    const marked = this.operations.has(run.name) ? { ...run, duringOperation: true } : run;
    for (const listener of this.listeners) {
      try {
        listener(marked);
      } catch (err) {
        this.log.error({ err, instance: marked.uuid, name: marked.name }, 'guest run event listener failed');
      }
    }
  }

  private entry(name: string): DomainRun {
    let r = this.runs.get(name);
    if (!r) {
      r = { reason: { event: 'connect', reason: null, guest: null, at: Date.now() }, downByMonitor: false, shutDown: false };
      this.runs.set(name, r);
    }
    return r;
  }

  private fromMonitor(m: MonitorEventMessage, uuid: string): GuestRunEvent | null {
    const run = guestRunEvent(m.domain.name, uuid, { event: m.event, data: parseDetails(m.details), timestamp: { seconds: m.seconds, microseconds: m.micros } });
    if (!run) return null;
    const state = this.entry(m.domain.name);
    if (run.event === 'SHUTDOWN' && state.shutDown) {
      // QEMU stops once per run: this is libvirt stopping the process the guest already shut down.
      this.log.debug({ instance: uuid, name: run.name, reason: run.reason }, 'second SHUTDOWN of one run not reported');
      return null;
    }
    state.reason = { event: run.event, reason: run.reason ?? run.action, guest: run.guest, at: run.timestamp };
    if (run.event === 'RESET') state.shutDown = false;
    if (run.event === 'SHUTDOWN') state.shutDown = true;
    if (run.event === 'SHUTDOWN' || (run.event === 'GUEST_PANICKED' && run.action !== 'run')) state.downByMonitor = true;
    return run;
  }

  private fromLifecycle(m: LifecycleMessage, uuid: string): GuestRunEvent | null {
    const name = m.domain.name;
    if (m.event === DomainEvent.UNDEFINED) {
      this.runs.delete(name);
      return null;
    }
    if (m.event === DomainEvent.DEFINED) return null;
    const state = this.entry(name);
    const down = m.event === DomainEvent.STOPPED || m.event === DomainEvent.SHUTDOWN || m.event === DomainEvent.CRASHED;
    if (!(down && state.downByMonitor)) {
      const names = lifecycleNames(m.event, m.detail);
      state.reason = { event: names.event, reason: names.detail, guest: null, at: Date.now() };
    }
    if (m.event === DomainEvent.STARTED || m.event === DomainEvent.RESUMED) {
      state.downByMonitor = false;
      state.shutDown = false;
    }
    if (this.source() !== 'lifecycle') return null;
    if (m.event === DomainEvent.CRASHED) {
      return this.fallback(name, uuid, m.detail === CrashedDetail.CRASHLOADED ? 'GUEST_CRASHLOADED' : 'GUEST_PANICKED', null);
    }
    if (m.event === DomainEvent.SHUTDOWN) {
      const guest = m.detail === ShutdownDetail.GUEST ? true : m.detail === ShutdownDetail.HOST ? false : null;
      return this.fallback(name, uuid, 'SHUTDOWN', guest);
    }
    return null;
  }

  /** A run event from libvirt's own events: what happened and (for shutdowns) who asked, not QEMU's reason. */
  private fallback(name: string, uuid: string, event: GuestRunEvent['event'], guest: boolean | null): GuestRunEvent {
    return { name, uuid, event, reason: null, guest, action: null, info: null, timestamp: Date.now(), duringOperation: false };
  }
}
