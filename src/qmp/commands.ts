// One small typed function per QMP command novamon sends, with the reply shapes QEMU 7.2 sends (QMP reference
// manual). Every reply is checked here, at the edge: a reply of the wrong shape raises QmpReplyError instead
// of travelling on as a lie. Each function takes an executor, so the same code runs over a bare
// QmpConnection, the registry, or a test double.

import { z } from 'zod';
import type { QmpCommandOptions, QmpConnection } from './connection.js';
import { QmpReplyError } from './errors.js';
import type { QmpMonitorRegistry } from './monitor-registry.js';

/** Sends one command and resolves with QEMU's `return` value, unchecked. */
export type QmpExecutor = (command: string, args?: Record<string, unknown>) => Promise<unknown>;

/** An executor over one connection. */
export function connectionExecutor(conn: QmpConnection, opts?: QmpCommandOptions): QmpExecutor {
  return (command, args) => conn.execute<unknown>(command, args, opts);
}

/** An executor over the registry's shared connection to `socketPath`. */
export function registryExecutor(registry: QmpMonitorRegistry, socketPath: string, opts?: QmpCommandOptions): QmpExecutor {
  return (command, args) => registry.execute<unknown>(socketPath, command, args, opts);
}

async function run<S extends z.ZodType>(exec: QmpExecutor, schema: S, command: string, args?: Record<string, unknown>): Promise<z.infer<S>> {
  const reply = await exec(command, args);
  const parsed = schema.safeParse(reply);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new QmpReplyError(command, issue ? `${issue.path.join('.') || '(reply)'}: ${issue.message}` : 'invalid');
  }
  return parsed.data;
}

const int = z.number().int();
const count = z.number().nonnegative();

// ---- Reply schemas ---------------------------------------------------------------------------------

const statusInfo = z.looseObject({ running: z.boolean(), status: z.string() });
/** QEMU's RunState (running, paused, shutdown, prelaunch, io-error, guest-panicked, ...); newer QEMU may add some. */
export type QmpRunState = string;
export type QmpStatusInfo = z.infer<typeof statusInfo>;

const nameInfo = z.looseObject({ name: z.string().optional() });
const uuidInfo = z.looseObject({ UUID: z.string() });
const versionInfo = z.looseObject({ qemu: z.looseObject({ major: int, minor: int, micro: int }), package: z.string() });
export type QmpVersionInfo = z.infer<typeof versionInfo>;
const kvmInfo = z.looseObject({ enabled: z.boolean(), present: z.boolean() });
export type QmpKvmInfo = z.infer<typeof kvmInfo>;

const cpuInfoFast = z.looseObject({ 'cpu-index': int.nonnegative(), 'qom-path': z.string(), 'thread-id': int.positive(), target: z.string().optional() });
export type QmpCpuInfoFast = z.infer<typeof cpuInfoFast>;

const blockDeviceStats = z.looseObject({
  rd_bytes: count,
  wr_bytes: count,
  rd_operations: count,
  wr_operations: count,
  failed_rd_operations: count.optional(),
  failed_wr_operations: count.optional(),
  failed_flush_operations: count.optional(),
});
const blockStats = z.looseObject({ device: z.string().optional(), qdev: z.string().optional(), 'node-name': z.string().optional(), stats: blockDeviceStats });
export type QmpBlockStats = z.infer<typeof blockStats>;

const blockInfo = z.looseObject({
  device: z.string(),
  qdev: z.string().optional(),
  removable: z.boolean(),
  locked: z.boolean().optional(),
  tray_open: z.boolean().optional(),
  'io-status': z.string().optional(),
  inserted: z.looseObject({ file: z.string(), ro: z.boolean(), drv: z.string(), 'node-name': z.string().optional() }).optional(),
});
export type QmpBlockInfo = z.infer<typeof blockInfo>;

const balloonInfo = z.looseObject({ actual: count });
export type QmpBalloonInfo = z.infer<typeof balloonInfo>;
const memorySizeSummary = z.looseObject({ 'base-memory': count, 'plugged-memory': count.optional() });
export type QmpMemorySizeSummary = z.infer<typeof memorySizeSummary>;

const vncInfo = z.looseObject({
  enabled: z.boolean(),
  host: z.string().optional(),
  family: z.string().optional(),
  /** The TCP port, as a string. */
  service: z.string().optional(),
  auth: z.string().optional(),
  clients: z.array(z.looseObject({ host: z.string(), service: z.string() })).optional(),
});
export type QmpVncInfo = z.infer<typeof vncInfo>;

const chardevInfo = z.looseObject({ label: z.string(), filename: z.string(), 'frontend-open': z.boolean().optional() });
export type QmpChardevInfo = z.infer<typeof chardevInfo>;

const rxFilterInfo = z.looseObject({ name: z.string(), 'main-mac': z.string() });
export type QmpRxFilterInfo = z.infer<typeof rxFilterInfo>;

const guestStats = z.looseObject({ stats: z.record(z.string(), z.number()), 'last-update': count });
/** The balloon's `guest-stats` property: stat-* values (2^64-1 when the guest never set one), last-update in seconds. */
export type QmpBalloonGuestStats = z.infer<typeof guestStats>;

/** Progress of the last `dump-guest-memory` (QEMU's DumpQueryResult; byte counts of guest memory). */
const dumpQueryResult = z.looseObject({ status: z.enum(['none', 'active', 'completed', 'failed']), completed: count, total: count });
export type QmpDumpQueryResult = z.infer<typeof dumpQueryResult>;

const empty = z.unknown();
export type QmpDataFormat = 'utf8' | 'base64';

// Array schemas built once: a reply is checked on every diagnostics call (query-blockstats).
const cpuInfoFastList = z.array(cpuInfoFast);
const blockStatsList = z.array(blockStats);
const blockInfoList = z.array(blockInfo);
const chardevInfoList = z.array(chardevInfo);
const rxFilterInfoList = z.array(rxFilterInfo);

// ---- Queries ---------------------------------------------------------------------------------------

export const queryStatus = (exec: QmpExecutor) => run(exec, statusInfo, 'query-status');
/** `{}` when the VM was started without `-name`. */
export const queryName = (exec: QmpExecutor) => run(exec, nameInfo, 'query-name');
/** All zeroes when the VM was started without `-uuid`. */
export const queryUuid = (exec: QmpExecutor) => run(exec, uuidInfo, 'query-uuid');
export const queryVersion = (exec: QmpExecutor) => run(exec, versionInfo, 'query-version');
export const queryKvm = (exec: QmpExecutor) => run(exec, kvmInfo, 'query-kvm');
/** One entry per vCPU; `thread-id` is the host thread whose /proc stat holds its CPU time. */
export const queryCpusFast = (exec: QmpExecutor) => run(exec, cpuInfoFastList, 'query-cpus-fast');
export const queryBlockstats = (exec: QmpExecutor) => run(exec, blockStatsList, 'query-blockstats');
export const queryBlock = (exec: QmpExecutor) => run(exec, blockInfoList, 'query-block');
export const queryBalloon = (exec: QmpExecutor) => run(exec, balloonInfo, 'query-balloon');
export const queryMemorySizeSummary = (exec: QmpExecutor) => run(exec, memorySizeSummary, 'query-memory-size-summary');
export const queryVnc = (exec: QmpExecutor) => run(exec, vncInfo, 'query-vnc');
export const queryChardev = (exec: QmpExecutor) => run(exec, chardevInfoList, 'query-chardev');
/** State of the VM's last (or running) memory dump; `none` before any. */
export const queryDump = (exec: QmpExecutor) => run(exec, dumpQueryResult, 'query-dump');

/** Rx filter state of every NIC, or only of NIC `name`. Asking re-arms that NIC's NIC_RX_FILTER_CHANGED event. */
export function queryRxFilter(exec: QmpExecutor, name?: string): Promise<QmpRxFilterInfo[]> {
  return run(exec, rxFilterInfoList, 'query-rx-filter', name === undefined ? undefined : { name });
}

/** Reads up to `size` bytes from a ringbuf chardev. Destructive: what is returned leaves the buffer. */
export function ringbufRead(exec: QmpExecutor, device: string, size: number, format: QmpDataFormat = 'utf8'): Promise<string> {
  return run(exec, z.string(), 'ringbuf-read', { device, size, format });
}

/** Reads a QOM property whose value the caller checks. */
export function qomGet(exec: QmpExecutor, path: string, property: string): Promise<unknown> {
  return run(exec, empty, 'qom-get', { path, property });
}

const qomProperty = z.looseObject({ name: z.string(), type: z.string() });
const qomPropertyList = z.array(qomProperty);
export type QmpObjectPropertyInfo = z.infer<typeof qomProperty>;

/** The properties (children included, as `child<TYPE>`) of the QOM object at `path`. */
export function qomList(exec: QmpExecutor, path: string): Promise<QmpObjectPropertyInfo[]> {
  return run(exec, qomPropertyList, 'qom-list', { path });
}

/** Reads an integer QOM property. */
export function qomGetInt(exec: QmpExecutor, path: string, property: string): Promise<number> {
  return run(exec, int, 'qom-get', { path, property });
}

/** The balloon device's guest statistics (what the guest's balloon driver last reported). */
export function qomGetBalloonGuestStats(exec: QmpExecutor, path: string): Promise<QmpBalloonGuestStats> {
  return run(exec, guestStats, 'qom-get', { path, property: 'guest-stats' });
}

export async function qomSet(exec: QmpExecutor, path: string, property: string, value: unknown): Promise<void> {
  await run(exec, empty, 'qom-set', { path, property, value });
}

// ---- Actions ---------------------------------------------------------------------------------------

/** Pauses the vCPUs (the STOP event arrives before the reply). */
export async function stop(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'stop');
}

/** Resumes the vCPUs; from `prelaunch` this starts the guest. */
export async function cont(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'cont');
}

/** Wakes a guest suspended to RAM. */
export async function systemWakeup(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'system_wakeup');
}

/** ACPI power-button press: a request the guest may ignore. */
export async function systemPowerdown(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'system_powerdown');
}

/** Hard reset. The RESET event comes after the reply, when the main loop has done it. */
export async function systemReset(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'system_reset');
}

/**
 * QEMU exits. The reply usually arrives before the socket closes, but not always: a caller that wants QEMU
 * gone should also take QmpDisconnectedError as success.
 */
export async function quit(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'quit');
}

/** Injects an NMI into every vCPU (Nova's trigger_crash_dump). */
export async function injectNmi(exec: QmpExecutor): Promise<void> {
  await run(exec, empty, 'inject-nmi');
}

/** Writes the guest's screen as a PPM file at `filename` (a path QEMU opens: the caller owns the directory). */
export async function screendump(exec: QmpExecutor, filename: string): Promise<void> {
  await run(exec, empty, 'screendump', { filename });
}

export interface DumpGuestMemoryOptions {
  /** Dump through the guest's page tables (virtual addresses) instead of its physical memory. */
  paging: boolean;
  /** Reply at once and dump in a QEMU thread (follow it with query-dump), instead of replying when done. */
  detach: boolean;
}

/**
 * Writes the guest's memory as an ELF core file. `protocol` is `file:<path>` (QEMU opens the path itself,
 * O_CREAT|O_TRUNC: the caller owns the directory) or `fd:<name>`.
 */
export async function dumpGuestMemory(exec: QmpExecutor, protocol: string, opts: DumpGuestMemoryOptions): Promise<void> {
  await run(exec, empty, 'dump-guest-memory', { paging: opts.paging, protocol, detach: opts.detach, format: 'elf' });
}

/** HMP command line; resolves with its CRLF text. An unknown HMP command is text, not a QMP error. */
export function humanMonitorCommand(exec: QmpExecutor, commandLine: string): Promise<string> {
  return run(exec, z.string(), 'human-monitor-command', { 'command-line': commandLine });
}

/** Any command, its reply unchecked: for the monitor passthrough, whose caller gets QEMU's value as is. */
export function passthrough(exec: QmpExecutor, command: string, args?: Record<string, unknown>): Promise<unknown> {
  return exec(command, args);
}
