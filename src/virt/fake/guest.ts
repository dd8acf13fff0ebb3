// One guest of the fake hypervisor, modelled as QEMU is: a process that may be alive or gone and a run
// status, with the transitions QEMU's events report (STOP, RESUME, SHUTDOWN, GUEST_PANICKED) and the CPU
// time a running guest accumulates.

import type { NovaException } from '../../exception.js';
import type { ComputeDriver, ConsoleEndpoint, LifecycleEvent, LifecycleTransition } from '../driver.js';
import { PowerState, powerStateFromQemuStatus } from '../power-state.js';

export type FakeMethod = Exclude<keyof ComputeDriver, 'type'>;

/** A guest to add to the fake hypervisor. */
export interface FakeInstanceSpec {
  name: string;
  uuid?: string | null;
  /** RUNNING (default), PAUSED, SHUTDOWN (process gone), CRASHED or SUSPENDED. */
  powerState?: PowerState;
  /** Serial console log so far; omitted = the guest has no logged serial port (ConsoleNotAvailable). */
  consoleOutput?: string | Buffer;
  /** VNC server; default 127.0.0.1:5900+n; null = no VNC. */
  vnc?: ConsoleEndpoint | null;
  /** TCP serial port; default none. */
  serial?: ConsoleEndpoint | null;
  /** Does the guest obey an ACPI power-down request? Default false (like the fixture guest). */
  acpi?: boolean;
  vcpus?: number;
  memoryMiB?: number;
}

export interface FakeGuest {
  name: string;
  uuid: string | null;
  /** False once "QEMU" has exited: the guest is powered off and can only be started again. */
  alive: boolean;
  /** QEMU run status while alive (running, paused, shutdown, guest-panicked, suspended). */
  status: string;
  console: Buffer | null;
  vnc: ConsoleEndpoint | null;
  serial: ConsoleEndpoint | null;
  acpi: boolean;
  vcpus: number;
  memoryMiB: number;
  frozen: boolean;
  startedAt: number;
  /** CPU time consumed before the current running stretch, in ms, and when that stretch began. */
  cpuMs: number;
  runningSince: number | null;
  faults: Map<FakeMethod, NovaException>;
  nmis: number;
}

const statusForPowerState: Record<number, string> = {
  [PowerState.RUNNING]: 'running',
  [PowerState.PAUSED]: 'paused',
  [PowerState.CRASHED]: 'guest-panicked',
  [PowerState.SUSPENDED]: 'suspended',
};

/** A guest as `spec` describes it, started at `now`; `vnc` is its VNC server unless the spec says otherwise. */
export function newFakeGuest(name: string, spec: FakeInstanceSpec, now: number, vnc: () => ConsoleEndpoint): FakeGuest {
  const state = spec.powerState ?? PowerState.RUNNING;
  const alive = state !== PowerState.SHUTDOWN && state !== PowerState.NOSTATE;
  const status = statusForPowerState[state] ?? 'shutdown';
  return {
    name,
    uuid: spec.uuid ?? null,
    alive,
    status,
    console: spec.consoleOutput === undefined ? null : Buffer.from(spec.consoleOutput),
    vnc: spec.vnc === undefined ? vnc() : spec.vnc,
    serial: spec.serial ?? null,
    acpi: spec.acpi ?? false,
    vcpus: spec.vcpus ?? 1,
    memoryMiB: spec.memoryMiB ?? 64,
    frozen: false,
    startedAt: now,
    cpuMs: 0,
    runningSince: alive && status === 'running' ? now : null,
    faults: new Map(),
    nmis: 0,
  };
}

export function guestPowerState(g: FakeGuest): PowerState {
  return g.alive ? powerStateFromQemuStatus(g.status) : PowerState.SHUTDOWN;
}

/** CPU time used so far, in ms. */
export function guestCpuMs(g: FakeGuest, now: number): number {
  return g.cpuMs + (g.runningSince === null ? 0 : now - g.runningSince);
}

/** Moves guests between run states and reports each change as the lifecycle event QEMU's would become. */
export class FakeTransitions {
  constructor(
    private readonly clock: () => number,
    private readonly publish: (event: LifecycleEvent) => void,
  ) {}

  /** The guest stops (`STOP`): paused, its CPU clock halted. */
  pause(g: FakeGuest): void {
    this.stopClock(g);
    g.status = 'paused';
    this.emit(g, 'paused', PowerState.PAUSED, 'STOP');
  }

  /** The guest powers itself off; QEMU stays alive in `shutdown` (-no-shutdown). */
  guestShutdown(g: FakeGuest): void {
    this.stopClock(g);
    g.status = 'shutdown';
    this.emit(g, 'stopped', PowerState.SHUTDOWN, 'SHUTDOWN/guest-shutdown');
  }

  /** The "QEMU process" is gone (`source` says how): the guest is off. */
  processGone(g: FakeGuest, source: string): void {
    this.stopClock(g);
    g.alive = false;
    g.frozen = false;
    g.status = 'shutdown';
    this.emit(g, 'stopped', PowerState.SHUTDOWN, source);
  }

  panic(g: FakeGuest): void {
    this.stopClock(g);
    g.status = 'guest-panicked';
    this.emit(g, 'crashed', PowerState.CRASHED, 'GUEST_PANICKED');
  }

  setRunning(g: FakeGuest, transition: LifecycleTransition, source: string): void {
    g.status = 'running';
    g.runningSince = this.clock();
    this.emit(g, transition, PowerState.RUNNING, source);
  }

  /** A new "QEMU" for a powered-off guest, as the qemu driver relaunches one from its recorded command line. */
  relaunch(g: FakeGuest): void {
    g.alive = true;
    g.startedAt = this.clock();
    g.cpuMs = 0;
    this.setRunning(g, 'started', 'relaunch');
  }

  private stopClock(g: FakeGuest): void {
    if (g.runningSince !== null) g.cpuMs += this.clock() - g.runningSince;
    g.runningSince = null;
  }

  private emit(g: FakeGuest, transition: LifecycleTransition, powerState: PowerState, source: string): void {
    this.publish({ name: g.name, uuid: g.uuid, transition, powerState, timestamp: this.clock(), source });
  }
}
