// What the libvirt driver knows about each domain without asking libvirtd: its handle, its state (kept by
// lifecycle events) and its parsed XML (dropped on every lifecycle event, since a start assigns the VNC
// port, and on device hot-plug and removal events). A fact is trusted only while the event stream that
// keeps it is live: a new connection starts from nothing.

import type { LifecycleMessage } from './connection.js';
import type { DomainConfig } from './domain-xml.js';
import type { LibvirtHost } from './host.js';
import { DomainEvent, DomainState, type DomainHandle } from './protocol.js';

interface DomainFacts {
  /** The event-stream generation these facts were learnt under. */
  readonly generation: number;
  handle: DomainHandle | null;
  state: number | null;
  config: DomainConfig | null;
  /** Bumped by every event and action: an answer asked across one is not stored. */
  epoch: number;
}

/** The state a lifecycle event leaves the domain in, when the event alone says it. */
function stateAfter(event: number): number | null {
  switch (event) {
    case DomainEvent.STARTED:
    case DomainEvent.RESUMED:
      return DomainState.RUNNING;
    case DomainEvent.SUSPENDED:
      return DomainState.PAUSED;
    case DomainEvent.STOPPED:
      return DomainState.SHUTOFF;
    case DomainEvent.PMSUSPENDED:
      return DomainState.PMSUSPENDED;
    case DomainEvent.CRASHED:
      return DomainState.CRASHED;
    default:
      // DEFINED keeps the run state but not the XML; SHUTDOWN is a passage (STOPPED follows): ask.
      return null;
  }
}

export class DomainCache {
  private readonly domains = new Map<string, DomainFacts>();

  constructor(private readonly host: LibvirtHost) {}

  /** The domain's facts, when the event stream that keeps them is still the live one. */
  private facts(name: string, create = true): DomainFacts | null {
    const generation = this.host.liveEventGeneration();
    if (generation === null) {
      this.domains.clear();
      return null;
    }
    let f = this.domains.get(name);
    if (f && f.generation !== generation) f = undefined;
    if (!f) {
      // Only domains that exist get an entry: asking about unknown names must not grow the map.
      if (!create) return null;
      f = { generation, handle: null, state: null, config: null, epoch: 0 };
      this.domains.set(name, f);
    }
    return f;
  }

  /** Applies one lifecycle event (called for every event libvirtd sends). */
  apply(m: LifecycleMessage): void {
    const f = this.domains.get(m.domain.name);
    if (!f) return;
    if (m.event === DomainEvent.UNDEFINED) {
      this.domains.delete(m.domain.name);
      return;
    }
    f.epoch++;
    f.state = stateAfter(m.event);
    // The domain id changes with each start and the XML with each start or definition.
    f.handle = null;
    f.config = null;
  }

  /** The handle of the domain named `name` (a lookup found by uuid under another name is not kept). */
  async handle(name: string, lookup: () => Promise<DomainHandle>): Promise<DomainHandle> {
    const known = this.facts(name, false);
    if (known?.handle) return known.handle;
    const epoch = known?.epoch ?? 0;
    const handle = await lookup();
    if (handle.name !== name) return handle;
    const f = this.facts(name);
    if (f && f.epoch === epoch) f.handle = handle;
    return handle;
  }

  async state(name: string, ask: () => Promise<number>): Promise<number> {
    const f = this.facts(name);
    if (f && f.state !== null) return f.state;
    const epoch = f?.epoch;
    const state = await ask();
    if (f && f.epoch === epoch) f.state = state;
    return state;
  }

  async config(name: string, ask: () => Promise<DomainConfig>): Promise<DomainConfig> {
    const f = this.facts(name);
    if (f?.config) return f.config;
    const epoch = f?.epoch;
    const config = await ask();
    if (f && f.epoch === epoch) f.config = config;
    return config;
  }

  /**
   * What we knew may be wrong now: the run state after a power action or monitor command of ours, the
   * XML after a device event, everything after anything else.
   */
  forget(name: string, what: 'state' | 'config' | 'all' = 'all'): void {
    const f = this.domains.get(name);
    if (!f) return;
    f.epoch++;
    if (what !== 'config') f.state = null;
    if (what === 'config') f.config = null;
    if (what === 'all') {
      f.config = null;
      f.handle = null;
    }
  }
}
