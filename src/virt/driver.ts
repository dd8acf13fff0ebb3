// The ComputeDriver contract: what every hypervisor driver (qemu, libvirt, fake) must do, named after
// Nova's nova/virt/driver.py where Nova has the method. Everything above virt/ talks to guests only
// through this interface; errors are the Nova exceptions of src/exception.ts.

import type { PowerState } from './power-state.js';
import type { Screenshot } from './screenshot.js';

export type { Screenshot } from './screenshot.js';

export const ComputeDriver = Symbol.for('novamon.ComputeDriver');

/** A guest as the driver addresses it: `name` is already validated (see instance-name.ts). */
export interface InstanceRef {
  readonly name: string;
  /** Nova's uuid when known; drivers use it in errors and may use it to find the guest. */
  readonly uuid?: string | undefined;
}

/** A guest found on this host by list_instances / discovery (Nova's init_host). */
export interface DiscoveredInstance {
  readonly name: string;
  /** The guest's own uuid (QEMU `-uuid`, libvirt domain uuid); null when the guest has none. */
  readonly uuid: string | null;
  readonly powerState: PowerState;
}

/** Nova's InstanceInfo (get_info). */
export interface InstanceInfo {
  readonly state: PowerState;
  readonly internalId?: string | undefined;
}

export interface CpuDiagnostics {
  id: number | null;
  /** Nanoseconds of CPU time. */
  time: number | null;
  utilisation: number | null;
}

export interface NicDiagnostics {
  macAddress: string | null;
  rxOctets: number | null;
  rxErrors: number | null;
  rxDrop: number | null;
  rxPackets: number | null;
  rxRate: number | null;
  txOctets: number | null;
  txErrors: number | null;
  txDrop: number | null;
  txPackets: number | null;
  txRate: number | null;
}

export interface DiskDiagnostics {
  /** Device name as the guest config names it (qdev id or drive id); not part of Nova's object. */
  device?: string;
  readBytes: number | null;
  readRequests: number | null;
  writeBytes: number | null;
  writeRequests: number | null;
  errorsCount: number | null;
}

export interface MemoryDiagnostics {
  /** MiB. */
  maximum: number | null;
  /** MiB. */
  used: number | null;
}

/** Nova's Diagnostics model (nova/virt/diagnostics.py, object version 1.0). */
export interface Diagnostics {
  state: 'pending' | 'running' | 'paused' | 'shutdown' | 'crashed' | 'suspended';
  /** Nova accepts only libvirt, xenapi, vmwareapi, ironic, hyperv: QEMU-backed drivers say libvirt. */
  driver: 'libvirt' | 'xenapi' | 'vmwareapi' | 'ironic' | 'hyperv';
  hypervisor: string | null;
  hypervisorOs: string | null;
  uptime: number | null;
  configDrive: boolean;
  cpuDetails: CpuDiagnostics[];
  nicDetails: NicDiagnostics[];
  diskDetails: DiskDiagnostics[];
  memoryDetails: MemoryDiagnostics;
}

/** Legacy get_diagnostics: the libvirt driver's flat dict (cpu0_time, vda_read, memory, ...). */
export type LegacyDiagnostics = Record<string, number | string | null>;

/** Nova's ctype.ConsoleVNC / ConsoleSerial (host, port, internal_access_path). */
export interface ConsoleEndpoint {
  host: string;
  port: number;
  internalAccessPath: string | null;
}

export type MonitorCommand =
  | { readonly kind: 'qmp'; readonly execute: string; readonly arguments?: Record<string, unknown> | undefined }
  | { readonly kind: 'hmp'; readonly commandLine: string };

export type RebootType = 'SOFT' | 'HARD';

export interface PowerOffOptions {
  /** Seconds to wait for the guest to power itself off after an ACPI request; 0 = force off now. */
  timeout: number;
  /** Seconds between re-sent ACPI requests while waiting. */
  retryInterval: number;
}

export type LifecycleTransition = 'started' | 'stopped' | 'paused' | 'resumed' | 'suspended' | 'crashed';

/** Nova's virtevent.LifecycleEvent, plus what the monitor told us. */
export interface LifecycleEvent {
  readonly name: string;
  readonly uuid: string | null;
  readonly transition: LifecycleTransition;
  readonly powerState: PowerState;
  /** Epoch milliseconds, from QEMU's event timestamp where there is one. */
  readonly timestamp: number;
  /** The monitor's raw event name and reason (e.g. STOP, SHUTDOWN/guest-shutdown, disconnect). */
  readonly source: string;
}

export type LifecycleListener = (event: LifecycleEvent) => void;

/** The hypervisor events that say why a guest went down or restarted. */
export type GuestRunEventName = 'SHUTDOWN' | 'RESET' | 'GUEST_PANICKED' | 'GUEST_CRASHLOADED';

/** One of those events, as the hypervisor reported it (QEMU's SHUTDOWN/RESET data, GUEST_PANICKED's action and info). */
export interface GuestRunEvent {
  readonly name: string;
  readonly uuid: string | null;
  readonly event: GuestRunEventName;
  /** QEMU's reason (guest-shutdown, host-qmp-quit, guest-reset, host-signal, ...), when it gave one. */
  readonly reason: string | null;
  /** Whether the guest itself asked for it, when the hypervisor says. */
  readonly guest: boolean | null;
  /** For panics and crash loads: what QEMU did about it (pause, poweroff, run). */
  readonly action: string | null;
  /** For panics: QEMU's panic information (hyper-v or s390 details), untrusted. */
  readonly info: Record<string, unknown> | null;
  /** Epoch milliseconds, from the hypervisor's event timestamp. */
  readonly timestamp: number;
  /**
   * True when it came while this driver was carrying out a power operation on the guest (stop, start,
   * reboot: QEMU's `quit`, `system_reset`, or the guest answering ACPI): the caller's action records it.
   */
  readonly duringOperation: boolean;
}

export type GuestRunEventListener = (event: GuestRunEvent) => void;

/** Why a guest's run state is what it is: the event (or look) that last changed it. */
export interface StateReason {
  /** The hypervisor's event name (QEMU: STOP, SHUTDOWN, RESET, ...), `query-status` when learnt by asking, `disconnect`. */
  readonly event: string;
  /** The hypervisor's reason or action (guest-shutdown, host-qmp-quit, guest-reset, pause, ...), when it gave one. */
  readonly reason: string | null;
  /** Whether the guest itself caused it, when the hypervisor says. */
  readonly guest: boolean | null;
  /** Epoch milliseconds (the hypervisor's clock for events). */
  readonly at: number;
}

export interface GuestBlockDevice {
  /** Drive id (`-drive id=`), empty for -blockdev-only devices. */
  readonly device: string;
  /** The guest device's QOM path or id. */
  readonly qdev: string | null;
  readonly nodeName: string | null;
  /** The image behind it; null when no medium is inserted. */
  readonly file: string | null;
  readonly readOnly: boolean | null;
  readonly removable: boolean;
  readonly trayOpen: boolean | null;
  /** QEMU's io-status (ok, failed, nospace) where it tracks one. */
  readonly ioStatus: string | null;
}

export interface GuestNic {
  /** The NIC's id (net0). */
  readonly name: string;
  /** The MAC the guest programmed (rx-filter), else the configured one. */
  readonly mac: string | null;
  /** The backend type (user, tap, ...). */
  readonly peerType: string | null;
  /** The host tap device behind the NIC, when there is one. */
  readonly hostDevice: string | null;
}

export interface GuestVcpu {
  readonly index: number;
  /** Host thread id of the vCPU (its CPU time is in /proc/<pid>/task/<threadId>/stat). */
  readonly threadId: number;
  readonly qomPath: string;
}

/** What a driver knows about one guest without asking its hypervisor: kept current by the hypervisor's events. */
export interface GuestView {
  readonly name: string;
  readonly uuid: string | null;
  readonly powerState: PowerState;
  /** The hypervisor's own run state (QEMU: running, paused, shutdown, prelaunch, guest-panicked, ...), or `offline`. */
  readonly status: string;
  readonly reason: StateReason;
  /** The VNC server's listening address (host may be a wildcard), or null without VNC. */
  readonly vnc: { readonly host: string; readonly port: number } | null;
  /** The TCP serial console's listening address, or null without one. */
  readonly serial: { readonly host: string; readonly port: number } | null;
  readonly blockDevices: readonly GuestBlockDevice[];
  readonly nics: readonly GuestNic[];
  readonly vcpus: readonly GuestVcpu[];
  /** Epoch ms when the current monitor connection was made. */
  readonly connectedAt: number;
}

/** What changed: the run state, a console, a device list, the vCPUs, memory, or the monitor connection (made or lost). */
export type GuestAspect = 'state' | 'vnc' | 'chardevs' | 'block' | 'nics' | 'vcpus' | 'memory' | 'connection';
export type GuestChangeListener = (guest: GuestView, aspect: GuestAspect) => void;

/** Counters of the monitor connections a driver holds. */
export interface MonitorStats {
  /** Live connections now. */
  connections: number;
  /** Monitor commands sent since start (successful or not). */
  commands: number;
  /** Of those, the ones that failed. */
  errors: number;
}

/** One guest's counters for /metrics, from the same sources as diagnostics (see guestSamples). */
export interface GuestSample {
  readonly view: GuestView;
  /** CPU time of the whole hypervisor process (vCPUs, emulator and I/O threads), nanoseconds. */
  readonly cpuTimeNs: number | null;
  readonly cpus: readonly { id: number; timeNs: number | null }[];
  readonly disks: readonly (DiskDiagnostics & {
    readTimeNs: number | null;
    writeTimeNs: number | null;
    flushRequests: number | null;
    /** The image behind the device, when the driver knows it. */
    file?: string | null;
  })[];
  readonly nics: readonly { name: string; hostDevice: string | null; counters: Omit<NicDiagnostics, 'macAddress' | 'rxRate' | 'txRate'> | null }[];
  readonly memory: {
    readonly maximumBytes: number | null;
    readonly balloonActualBytes: number | null;
    /** Balloon guest stats by libvirt name (KiB for sizes, counts otherwise). */
    readonly guestStats: Readonly<Record<string, number>>;
    readonly rssKiB: number | null;
  };
  /**
   * Round trip of the one hypervisor call the sample cost, seconds: the guest's query-blockstats (qemu), or
   * the scrape's one bulk-stats call that libvirtd answers for every guest (libvirt).
   */
  readonly monitorSeconds: number | null;
}

/** A scrape's samples; `failed` counts guests whose collection failed or outran the per-guest timeout. */
export interface GuestSamples {
  samples: GuestSample[];
  failed: number;
}

/**
 * Every per-guest method below, whatever else it says, raises:
 * - InvalidInstanceName when `instance.name` does not fit instance_name_template (before any I/O);
 * - InstanceNotFound when no such guest exists on this host (neither running nor startable);
 * - HypervisorUnavailable when the hypervisor cannot be reached (libvirtd down, monitor socket not ours);
 * - MonitorTimeout when the hypervisor does not answer within [monitor] command_timeout (a frozen QEMU).
 * Methods that answer from state the driver keeps (get_info, consoles, console output) may answer a
 * frozen guest instead of timing out, as libvirt answers domain state without asking QEMU.
 */
export interface ComputeDriver {
  /** Which driver this is (qemu, libvirt, fake); shown in logs and diagnostics. */
  readonly type: string;

  /**
   * Nova's init_host: connect to the hypervisor, find the guests already running and start delivering
   * their lifecycle events. Raises HypervisorUnavailable when the hypervisor cannot be reached.
   */
  initHost(host: string): Promise<void>;

  /**
   * Nova's list_instances, with each guest's own uuid (null when it has none) and power state: every guest
   * this driver can see on the host, including powered-off guests it can start again. A guest that
   * exists but does not answer is listed as SHUTDOWN rather than hidden. Raises nothing per guest.
   */
  listInstances(): Promise<DiscoveredInstance[]>;

  /**
   * Nova's get_info: the guest's power state (SHUTDOWN for a guest whose process is gone but which can be
   * started again). Never raises InstanceNotRunning.
   */
  getInfo(instance: InstanceRef): Promise<InstanceInfo>;

  /**
   * Nova's get_console_output: the tail of the guest's serial console log as raw bytes, at most
   * MAX_CONSOLE_BYTES (100 KiB), never consumed by reading; also for a powered-off guest (the log outlives
   * it); empty when the guest never wrote. Raises ConsoleNotAvailable when the guest has no logged serial port.
   */
  getConsoleOutput(instance: InstanceRef): Promise<Buffer>;

  /**
   * Nova's get_instance_diagnostics: Diagnostics with real figures only (unknown values are null, never
   * invented or sentinel). Raises InstanceInvalidState (power_state) when the guest is powered off.
   */
  getInstanceDiagnostics(instance: InstanceRef): Promise<Diagnostics>;

  /** Nova's get_diagnostics: the libvirt driver's legacy flat dict (cpu0_time, vda_read, memory, ...). Raises as getInstanceDiagnostics. */
  getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics>;

  /**
   * Nova's get_vnc_console: where the guest's VNC server listens (a wildcard address replaced by the
   * address the console proxy reaches this host on). Raises ConsoleTypeUnavailable when the guest has no
   * VNC server or is not running.
   */
  getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint>;

  /**
   * Nova's get_serial_console: the guest's TCP serial port. Raises ConsoleTypeUnavailable when the guest
   * has none or is not running.
   */
  getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint>;

  /**
   * Nova's power_off: with timeout > 0 an ACPI request (re-sent every retryInterval), forced off when the
   * guest has not powered off within timeout seconds; with timeout 0 forced at once. Afterwards get_info
   * says SHUTDOWN and power_on can start the guest again. A guest already off is not an error.
   */
  powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void>;

  /**
   * Nova's power_on: the guest runs afterwards (a stopped process relaunched as it was started, a paused or
   * shut-down one continued or reset). A running guest is not an error. Raises InternalError when a
   * guest's process is gone and nothing records how to start it.
   */
  powerOn(instance: InstanceRef): Promise<void>;

  /** Nova's pause: vCPUs stopped, get_info says PAUSED. A paused guest is not an error; raises InstanceNotRunning when it is off. */
  pause(instance: InstanceRef): Promise<void>;

  /** Nova's unpause: a paused guest runs again. A running guest is not an error; raises InstanceNotRunning when it is off or crashed. */
  unpause(instance: InstanceRef): Promise<void>;

  /**
   * Nova's reboot: SOFT asks the guest to shut down and starts it again, falling back to HARD when it
   * ignores the request (as Nova's libvirt driver does); HARD resets it. The guest runs afterwards; a
   * powered-off guest is started.
   */
  reboot(instance: InstanceRef, type: RebootType): Promise<void>;

  /**
   * novamon's passthrough: a QMP command (its `return` value, unchecked) or an HMP command line (its
   * text; an unknown HMP command is text, not an error). Raises MonitorCommandFailed with QEMU's class and
   * desc when QEMU refuses, InstanceNotRunning when no QEMU runs the guest. Policy (admin only,
   * allow-list, audit) is the caller's job: the compute manager enforces it before calling here.
   */
  monitorCommand(instance: InstanceRef, command: MonitorCommand): Promise<unknown>;

  /**
   * novamon: the guest's screen as PNG (QEMU's screendump). Raises InstanceNotRunning when no QEMU
   * runs the guest, ConsoleNotAvailable when it has no display.
   */
  screenshot(instance: InstanceRef): Promise<Screenshot>;

  /**
   * Nova's trigger_crash_dump: an NMI injected into the guest (QMP inject-nmi). Raises
   * InstanceNotRunning when the guest is not running.
   */
  triggerCrashDump(instance: InstanceRef): Promise<void>;

  /**
   * Subscribe to lifecycle events (started, stopped, paused, resumed, suspended, crashed), each delivered
   * once per change whoever caused it; returns the unsubscribe function. Listeners must not throw.
   */
  onLifecycleEvent(listener: LifecycleListener): () => void;

  // ---- optional abilities: present only on drivers that have them --------------------------------

  /** Counters of the monitor connections the driver holds (qemu); absent when it holds none. */
  monitorStats?(): MonitorStats;

  /**
   * What the driver knows of a guest without asking the hypervisor; null when it has no live view of it
   * (not connected yet, or unknown). Raises InvalidInstanceName for a malformed name. Never sends a command.
   */
  guestView?(instance: InstanceRef): GuestView | null;

  /**
   * Counters of every connected guest, at most `concurrency` collections at a time, each given up after
   * `timeoutMs` (a frozen monitor then only drops its own guest). Never raises.
   */
  guestSamples?(opts: { concurrency: number; timeoutMs: number }): Promise<GuestSamples>;

  /** Subscribe to changes of those views (a listener must not throw or block); returns the unsubscribe function. */
  onGuestChange?(listener: GuestChangeListener): () => void;

  /** Subscribe to every shutdown, reset, panic and crash-load the hypervisor reports; absent when it reports none. */
  onGuestRunEvent?(listener: GuestRunEventListener): () => void;

  /** Release every connection; pending work fails promptly. */
  close(): Promise<void>;
}

/** Nova's MAX_CONSOLE_BYTES: the libvirt driver reads at most the last 100 KiB of a console log. */
export const MAX_CONSOLE_BYTES = 100 * 1024;
