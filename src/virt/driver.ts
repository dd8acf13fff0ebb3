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

export interface ComputeDriver {
  /** Which driver this is (qemu, libvirt, fake); shown in logs and diagnostics. */
  readonly type: string;

  /** Nova's init_host: connect to the hypervisor and start delivering lifecycle events. */
  initHost(host: string): Promise<void>;

  /** Nova's list_instances plus uuid and power state: every guest this driver can see on the host. */
  listInstances(): Promise<DiscoveredInstance[]>;

  /** Nova's get_info. Raises InstanceNotFound if the guest does not exist. */
  getInfo(instance: InstanceRef): Promise<InstanceInfo>;

  /**
   * Nova's get_console_output: the tail of the guest's serial console as raw bytes, at most
   * MAX_CONSOLE_BYTES (100 KiB). Raises ConsoleNotAvailable when the guest has no logged serial port.
   */
  getConsoleOutput(instance: InstanceRef): Promise<Buffer>;

  /** Nova's get_instance_diagnostics. Real figures only: unknown values are null. */
  getInstanceDiagnostics(instance: InstanceRef): Promise<Diagnostics>;

  /** Nova's get_diagnostics (legacy flat dict, libvirt driver's keys). */
  getDiagnostics(instance: InstanceRef): Promise<LegacyDiagnostics>;

  /** Nova's get_vnc_console. Raises ConsoleTypeUnavailable when the guest has no VNC server. */
  getVncConsole(instance: InstanceRef): Promise<ConsoleEndpoint>;

  /** Nova's get_serial_console. Raises ConsoleTypeUnavailable when the guest has no TCP serial port. */
  getSerialConsole(instance: InstanceRef): Promise<ConsoleEndpoint>;

  /** Nova's power_off: clean (ACPI, then forced after timeout) when timeout > 0, else forced. */
  powerOff(instance: InstanceRef, options: PowerOffOptions): Promise<void>;

  /** Nova's power_on: a powered-off guest runs again (relaunched if its process is gone). */
  powerOn(instance: InstanceRef): Promise<void>;

  pause(instance: InstanceRef): Promise<void>;
  unpause(instance: InstanceRef): Promise<void>;

  /** Nova's reboot: SOFT asks the guest (falls back to HARD as Nova's libvirt driver does), HARD resets. */
  reboot(instance: InstanceRef, type: RebootType): Promise<void>;

  /**
   * novamon's passthrough: a QMP command (its `return` value) or an HMP command line (its text).
   * QEMU's errors arrive as MonitorCommandFailed with QEMU's class and desc. Policy (admin only,
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

  /** Subscribe to lifecycle events; returns the unsubscribe function. */
  onLifecycleEvent(listener: LifecycleListener): () => void;

  /** Release every connection; pending work fails promptly. */
  close(): Promise<void>;
}

/** Nova's MAX_CONSOLE_BYTES: the libvirt driver reads at most the last 100 KiB of a console log. */
export const MAX_CONSOLE_BYTES = 100 * 1024;
