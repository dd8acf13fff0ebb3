// One small typed function per QMP command novamon uses, with the reply shapes QEMU 7.2 sends (see the QMP
// reference manual). Each takes an executor, so the same function runs over a bare QmpConnection, the
// registry, or a test double; these functions add no behaviour beyond naming arguments and typing replies.

import type { QmpCommandOptions, QmpConnection } from './connection.js';
import type { QmpMonitorRegistry } from './monitor-registry.js';

export type QmpExecutor = <T>(command: string, args?: Record<string, unknown>) => Promise<T>;

/** An executor over one connection. */
export function connectionExecutor(conn: QmpConnection, opts?: QmpCommandOptions): QmpExecutor {
  return <T>(command: string, args?: Record<string, unknown>) => conn.execute<T>(command, args, opts);
}

/** An executor over the registry's shared connection to `socketPath`. */
export function registryExecutor(registry: QmpMonitorRegistry, socketPath: string, opts?: QmpCommandOptions): QmpExecutor {
  return <T>(command: string, args?: Record<string, unknown>) => registry.execute<T>(socketPath, command, args, opts);
}

// ---- Reply types -----------------------------------------------------------------------------------

/** QEMU's RunState. Newer QEMU may add states, hence the open string. */
export type QmpRunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo'
  | (string & {});

export interface QmpStatusInfo {
  running: boolean;
  /** Deprecated since QEMU 8.1, still sent by 7.2. */
  singlestep?: boolean;
  status: QmpRunState;
}

/** `query-name`: `{}` when the VM was started without `-name`. */
export interface QmpNameInfo {
  name?: string;
}

/** `query-uuid`: all zeroes when started without `-uuid`. */
export interface QmpUuidInfo {
  UUID: string;
}

export interface QmpVersionInfo {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpKvmInfo {
  enabled: boolean;
  present: boolean;
}

export interface QmpCpuInstanceProperties {
  'node-id'?: number;
  'socket-id'?: number;
  'die-id'?: number;
  'cluster-id'?: number;
  'core-id'?: number;
  'thread-id'?: number;
}

export interface QmpCpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  /** Host thread id of the vCPU: /proc/<pid>/task/<thread-id>/stat holds its CPU time. */
  'thread-id': number;
  props?: QmpCpuInstanceProperties;
  /** e.g. "x86_64". */
  target: string;
  /** s390x only. */
  'cpu-state'?: string;
}

export interface QmpBlockDeviceTimedStats {
  interval_length: number;
  min_rd_latency_ns: number;
  max_rd_latency_ns: number;
  avg_rd_latency_ns: number;
  min_wr_latency_ns: number;
  max_wr_latency_ns: number;
  avg_wr_latency_ns: number;
  min_flush_latency_ns: number;
  max_flush_latency_ns: number;
  avg_flush_latency_ns: number;
  avg_rd_queue_depth: number;
  avg_wr_queue_depth: number;
}

export interface QmpBlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  unmap_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  unmap_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
  unmap_total_time_ns: number;
  wr_highest_offset: number;
  rd_merged: number;
  wr_merged: number;
  unmap_merged: number;
  /** Absent until the device has done I/O. */
  idle_time_ns?: number;
  failed_rd_operations: number;
  failed_wr_operations: number;
  failed_flush_operations: number;
  failed_unmap_operations: number;
  invalid_rd_operations: number;
  invalid_wr_operations: number;
  invalid_flush_operations: number;
  invalid_unmap_operations: number;
  account_invalid: boolean;
  account_failed: boolean;
  timed_stats: QmpBlockDeviceTimedStats[];
}

export interface QmpBlockStats {
  /** The `-drive id=`; empty or absent for -blockdev nodes. */
  device?: string;
  /** QOM path of the guest device, e.g. "/machine/peripheral/virtio-disk0/virtio-backend". */
  qdev?: string;
  'node-name'?: string;
  stats: QmpBlockDeviceStats;
  'driver-specific'?: Record<string, unknown> & { driver: string };
  parent?: QmpBlockStats;
  backing?: QmpBlockStats;
}

export interface QmpBalloonInfo {
  /** Bytes currently given to the guest. */
  actual: number;
}

export interface QmpMemorySizeSummary {
  /** Bytes of boot memory (-m). */
  'base-memory': number;
  'plugged-memory'?: number;
}

export interface QmpVncClientInfo {
  host: string;
  service: string;
  family: 'ipv4' | 'ipv6' | 'unix' | 'vsock' | 'unknown';
  websocket: boolean;
  x509_dname?: string;
  sasl_username?: string;
}

export interface QmpVncInfo {
  enabled: boolean;
  host?: string;
  family?: 'ipv4' | 'ipv6' | 'unix' | 'vsock' | 'unknown';
  /** The TCP port, as a string. */
  service?: string;
  auth?: string;
  clients?: QmpVncClientInfo[];
}

export interface QmpChardevInfo {
  label: string;
  /** Backend description, e.g. "ringbuf", "unix:/path,server=on", "pty:/dev/pts/3". */
  filename: string;
  'frontend-open': boolean;
}

export type QmpRxState = 'normal' | 'none' | 'all';

export interface QmpRxFilterInfo {
  /** The NIC's id (-device ...,id=). */
  name: string;
  promiscuous: boolean;
  multicast: QmpRxState;
  unicast: QmpRxState;
  vlan: QmpRxState;
  'broadcast-allowed': boolean;
  'multicast-overflow': boolean;
  'unicast-overflow': boolean;
  'main-mac': string;
  'vlan-table': number[];
  'unicast-table': string[];
  'multicast-table': string[];
}

export type QmpDataFormat = 'utf8' | 'base64';

// ---- Queries ---------------------------------------------------------------------------------------

export const queryStatus = (exec: QmpExecutor): Promise<QmpStatusInfo> => exec<QmpStatusInfo>('query-status');
export const queryName = (exec: QmpExecutor): Promise<QmpNameInfo> => exec<QmpNameInfo>('query-name');
export const queryUuid = (exec: QmpExecutor): Promise<QmpUuidInfo> => exec<QmpUuidInfo>('query-uuid');
export const queryVersion = (exec: QmpExecutor): Promise<QmpVersionInfo> => exec<QmpVersionInfo>('query-version');
export const queryKvm = (exec: QmpExecutor): Promise<QmpKvmInfo> => exec<QmpKvmInfo>('query-kvm');
export const queryCpusFast = (exec: QmpExecutor): Promise<QmpCpuInfoFast[]> => exec<QmpCpuInfoFast[]>('query-cpus-fast');
export const queryBlockstats = (exec: QmpExecutor): Promise<QmpBlockStats[]> => exec<QmpBlockStats[]>('query-blockstats');
export const queryBalloon = (exec: QmpExecutor): Promise<QmpBalloonInfo> => exec<QmpBalloonInfo>('query-balloon');
export const queryMemorySizeSummary = (exec: QmpExecutor): Promise<QmpMemorySizeSummary> =>
  exec<QmpMemorySizeSummary>('query-memory-size-summary');
export const queryVnc = (exec: QmpExecutor): Promise<QmpVncInfo> => exec<QmpVncInfo>('query-vnc');
export const queryChardev = (exec: QmpExecutor): Promise<QmpChardevInfo[]> => exec<QmpChardevInfo[]>('query-chardev');

/** Rx filter state of every NIC, or only of NIC `name`. */
export function queryRxFilter(exec: QmpExecutor, name?: string): Promise<QmpRxFilterInfo[]> {
  return exec<QmpRxFilterInfo[]>('query-rx-filter', name === undefined ? undefined : { name });
}

/** Reads up to `size` bytes from a ringbuf chardev. Destructive: what is returned leaves the buffer. */
export function ringbufRead(exec: QmpExecutor, device: string, size: number, format: QmpDataFormat = 'utf8'): Promise<string> {
  return exec<string>('ringbuf-read', { device, size, format });
}

/** Reads a QOM property; the reply type depends on the property. */
export function qomGet<T = unknown>(exec: QmpExecutor, path: string, property: string): Promise<T> {
  return exec<T>('qom-get', { path, property });
}

export async function qomSet(exec: QmpExecutor, path: string, property: string, value: unknown): Promise<void> {
  await exec<Record<string, never>>('qom-set', { path, property, value });
}

// ---- Actions ---------------------------------------------------------------------------------------

/** Pauses the vCPUs (a STOP event may arrive before the reply). */
export async function stop(exec: QmpExecutor): Promise<void> {
  await exec<Record<string, never>>('stop');
}

/** Resumes the vCPUs; from `prelaunch` this starts the guest. */
export async function cont(exec: QmpExecutor): Promise<void> {
  await exec<Record<string, never>>('cont');
}

/** ACPI power-button press: a request the guest may ignore. */
export async function systemPowerdown(exec: QmpExecutor): Promise<void> {
  await exec<Record<string, never>>('system_powerdown');
}

/** Hard reset. */
export async function systemReset(exec: QmpExecutor): Promise<void> {
  await exec<Record<string, never>>('system_reset');
}

/**
 * QEMU exits. The reply usually arrives before the socket closes, but not always: a caller that wants QEMU
 * gone should also take QmpDisconnectedError as success.
 */
export async function quit(exec: QmpExecutor): Promise<void> {
  await exec<Record<string, never>>('quit');
}

/** HMP command line; resolves with its CRLF text. An unknown HMP command is text, not a QMP error. */
export function humanMonitorCommand(exec: QmpExecutor, commandLine: string): Promise<string> {
  return exec<string>('human-monitor-command', { 'command-line': commandLine });
}
