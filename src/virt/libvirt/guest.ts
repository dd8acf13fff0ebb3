// One libvirt domain's operations, as Nova's libvirt/guest.py: state, XML config, power actions,
// bulk stats and the QEMU monitor passthrough. Every call goes through LibvirtHost, so failures arrive
// as Nova exceptions; the passthrough additionally turns QEMU's and libvirt's refusals into MonitorCommandFailed.

import { readFile } from 'node:fs/promises';
import { MonitorCommandFailed, NovaException } from '../../exception.js';
import { PowerState } from '../power-state.js';
import { LibvirtRpcError } from './connection.js';
import type { DomainCache } from './domain-cache.js';
import { parseDomainXml, type DomainConfig } from './domain-xml.js';
import type { LibvirtHost } from './host.js';
import {
  DomainState, ErrorCode, QEMU_MONITOR_COMMAND_HMP, SHUTDOWN_ACPI_POWER_BTN, uuidToString, type DomainHandle, type TypedParamValue,
} from './protocol.js';

/** libvirt's virDomainState → Nova's power_state (as nova/virt/libvirt/guest.py LIBVIRT_POWER_STATE). */
export function powerStateFromLibvirt(state: number): PowerState {
  switch (state) {
    case DomainState.RUNNING:
    case DomainState.BLOCKED:
      return PowerState.RUNNING;
    case DomainState.PAUSED:
      return PowerState.PAUSED;
    case DomainState.SHUTDOWN:
    case DomainState.SHUTOFF:
      return PowerState.SHUTDOWN;
    case DomainState.CRASHED:
      return PowerState.CRASHED;
    case DomainState.PMSUSPENDED:
      return PowerState.SUSPENDED;
    default:
      return PowerState.NOSTATE;
  }
}

/** Where libvirtd (qemu:///system) keeps the QEMU pid of a running domain. */
const QEMU_PID_DIR = '/run/libvirt/qemu';

export class LibvirtGuest {
  constructor(
    private readonly host: LibvirtHost,
    readonly handle: DomainHandle,
    /** What errors name the instance by: Nova's uuid when known, else the domain name. */
    readonly instanceId: string,
    /** What the driver knows without asking; null to ask libvirtd every time. */
    private readonly cache: DomainCache | null = null,
  ) {}

  get name(): string {
    return this.handle.name;
  }

  get uuid(): string {
    return uuidToString(this.handle.uuid);
  }

  private call<T>(fn: (c: Awaited<ReturnType<LibvirtHost['connection']>>) => Promise<T>): Promise<T> {
    return this.host.call(this.instanceId, fn);
  }

  async state(): Promise<number> {
    const ask = async () => (await this.call((c) => c.getState(this.handle))).state;
    return this.cache ? this.cache.state(this.name, ask) : ask();
  }

  async powerState(): Promise<PowerState> {
    return powerStateFromLibvirt(await this.state());
  }

  async isActive(): Promise<boolean> {
    const s = await this.state();
    return s !== DomainState.SHUTOFF && s !== DomainState.NOSTATE && s !== DomainState.CRASHED;
  }

  /** The domain's live XML, as kept by the cache; `refresh` drops what the cache knew first. */
  async config(refresh = false): Promise<DomainConfig> {
    if (refresh) this.cache?.forget(this.name);
    const ask = async () => parseDomainXml(await this.call((c) => c.getXmlDesc(this.handle)));
    return this.cache ? this.cache.config(this.name, ask) : ask();
  }

  /** After an action that changes the domain: what the cache knew is asked again (events refill it). */
  private changed<T>(what: 'state' | 'all', action: Promise<T>): Promise<T> {
    return action.finally(() => this.cache?.forget(this.name, what));
  }

  /** Starts a defined, shut-off domain (QEMU is launched by libvirtd); generous timeout: TCG start is slow. */
  async start(): Promise<void> {
    await this.changed('all', this.call((c) => c.create(this.handle, Math.max(this.host.callTimeoutMs, 60_000))));
  }

  async destroy(): Promise<void> {
    await this.changed('all', this.call((c) => c.destroy(this.handle, Math.max(this.host.callTimeoutMs, 30_000))));
  }

  async shutdownAcpi(): Promise<void> {
    await this.changed('state', this.call((c) => c.shutdown(this.handle, SHUTDOWN_ACPI_POWER_BTN)));
  }

  async suspend(): Promise<void> {
    await this.changed('state', this.call((c) => c.suspend(this.handle)));
  }

  async resume(): Promise<void> {
    await this.changed('state', this.call((c) => c.resume(this.handle)));
  }

  async reset(): Promise<void> {
    await this.changed('state', this.call((c) => c.reset(this.handle)));
  }

  async injectNmi(): Promise<void> {
    await this.call((c) => c.injectNmi(this.handle));
  }

  /** virDomainScreenshot: libvirt has QEMU write the screen and streams it to us. */
  async screenshot(maxBytes: number): Promise<{ mime: string | null; data: Buffer }> {
    return this.call((c) => c.screenshot(this.handle, maxBytes, Math.max(this.host.callTimeoutMs, 30_000)));
  }

  /** CPU time of each online vCPU (ns), by vCPU number; libvirtd reads it from /proc without a domain job. */
  async vcpuTimes(maxVcpus: number): Promise<{ id: number; timeNs: number }[]> {
    const info = await this.call((c) => c.getVcpus(this.handle, maxVcpus));
    return info.map((v) => ({ id: v.number, timeNs: Number(v.cpuTimeNs) }));
  }

  async stats(types: number): Promise<Map<string, TypedParamValue>> {
    const records = await this.call((c) => c.getAllDomainStats([this.handle], types));
    return records[0]?.params ?? new Map();
  }

  /** QMP through libvirt: QEMU's `return` value, or MonitorCommandFailed with QEMU's class and desc. */
  async qmp(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const text = await this.monitor(JSON.stringify(args === undefined ? { execute } : { execute, arguments: args }), 0);
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch (err) {
      throw new MonitorCommandFailed('libvirt', `unparsable QMP reply: ${text.slice(0, 200)}`, { cause: err });
    }
    const r = reply as { return?: unknown; error?: { class?: unknown; desc?: unknown } };
    if (r && typeof r === 'object' && r.error && typeof r.error === 'object') {
      throw new MonitorCommandFailed(String(r.error.class ?? 'GenericError'), String(r.error.desc ?? ''));
    }
    return r.return ?? {};
  }

  /** HMP through libvirt: the command's text output. */
  async hmp(commandLine: string): Promise<string> {
    return this.monitor(commandLine, QEMU_MONITOR_COMMAND_HMP);
  }

  private async monitor(command: string, flags: number): Promise<string> {
    const conn = await this.host.connection();
    try {
      return await conn.monitorCommand(this.handle, command, flags);
    } catch (err) {
      const translated = this.host.translate(err, this.instanceId);
      // libvirt refusing the command itself (bad JSON, an `id` member, ...) is the command's failure,
      // not the hypervisor's: report it like a QEMU error, with libvirt's message.
      if (err instanceof LibvirtRpcError && !(translated instanceof NovaException && isStateError(err.code))) {
        throw new MonitorCommandFailed('libvirt', err.message, { cause: err });
      }
      throw translated;
    }
  }

  /** When the QEMU process started (epoch ms), from its pidfile and /proc; null when unreadable. */
  async startedAt(): Promise<number | null> {
    try {
      const pid = Number((await readFile(`${QEMU_PID_DIR}/${this.name}.pid`, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0) return null;
      const [stat, uptimeText] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile('/proc/uptime', 'utf8')]);
      // Fields after the command name (which may contain spaces) start at ") "; starttime is field 22.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const startTicks = Number(fields[19]);
      const uptime = Number(uptimeText.split(' ')[0]);
      const hz = 100; // USER_HZ is 100 on every Linux ABI novamon runs on
      if (!Number.isFinite(startTicks) || !Number.isFinite(uptime)) return null;
      return Date.now() - Math.max(0, uptime - startTicks / hz) * 1000;
    } catch {
      return null;
    }
  }
}

function isStateError(code: number): boolean {
  return code === ErrorCode.NO_DOMAIN || code === ErrorCode.OPERATION_INVALID || code === ErrorCode.OPERATION_TIMEOUT;
}
