// The compute manager: one method per compute RPC method novamon serves, in Nova's manager semantics
// (nova/compute/manager.py). It reaches guests only through the ComputeDriver contract and records
// what Nova records: states, instance actions and events, faults, console tokens, diagnostics, audit.

import os from 'node:os';
import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import {
  ConsoleTypeInvalid,
  ConsoleTypeUnavailable,
  InstanceInvalidState,
  InstanceNotFound,
  InstanceNotReady,
  NotImplementedByDriver,
  PolicyNotAuthorized,
} from '../exception.js';
import type { Logger } from '../logging.js';
import { ComputeDriver, type Diagnostics, type LegacyDiagnostics, type MonitorCommand, type RebootType } from '../virt/driver.js';
import { PowerState, powerStateName } from '../virt/power-state.js';
import {
  ComputeLogger,
  ComputeNotifier,
  ComputeSettings,
  ComputeStores,
  type ComputeNotifierShape,
  type ComputeSettingsShape,
  type ComputeStoresShape,
} from './tokens.js';
import { InstanceResolver, type InstanceIdentity, type ResolvedInstance } from './instance-resolver.js';
import { PowerStateSync } from './lifecycle.js';
import { InstanceRecorder } from './recorder.js';
import { MonitorPolicy } from './monitor-policy.js';
import { HARD_REBOOT_STATES, SOFT_REBOOT_STATES, TaskState, VmState } from './states.js';
import type { UnsupportedOperation } from './unsupported.js';

/** What get_vnc_console / get_serial_console return (Nova's ConsoleAuthToken connection info). */
export interface ConsoleConnectInfo {
  host: string;
  port: number;
  internalAccessPath: string | null;
  token: string;
  accessUrl: string;
}

/** The rule a non-admin list_instances is refused under. */
export const LIST_INSTANCES_RULE = 'novamon:list_instances';

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);
const OFF_STATES = new Set<number>([PowerState.NOSTATE, PowerState.SHUTDOWN, PowerState.CRASHED]);

@injectable()
export class ComputeManager {
  private readonly log: Logger;

  constructor(
    @inject(ComputeDriver) private readonly driver: ComputeDriver,
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(InstanceResolver) private readonly resolver: InstanceResolver,
    @inject(InstanceRecorder) private readonly recorder: InstanceRecorder,
    @inject(MonitorPolicy) private readonly monitorPolicy: MonitorPolicy,
    @inject(PowerStateSync) private readonly sync: PowerStateSync,
    @inject(ComputeNotifier) private readonly notifier: ComputeNotifierShape,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'compute-manager' });
    // Nova's compute API casts stop_instance to the host that found its guest off; here it runs in-process.
    sync.onUnexpectedShutdown((ctx, instance) => this.stopInstance(ctx, instance, true));
  }

  /** Nova: get_console_output. The tail of the serial console, ASCII with replacement characters. */
  async getConsoleOutput(ctx: RequestContext, instance: ResolvedInstance, tailLength: number | null): Promise<string> {
    return this.recorder.withFault(ctx, instance, async () => {
      const output = await this.driver.getConsoleOutput(instance);
      return decodeAsciiReplace(tailLog(output, tailLength));
    });
  }

  /** Nova: get_instance_diagnostics. Running guests only; each answer is kept as a snapshot. */
  async getInstanceDiagnostics(ctx: RequestContext, instance: ResolvedInstance): Promise<Diagnostics> {
    return this.recorder.withFault(ctx, instance, async () => {
      await this.requireRunning(instance, 'get_diagnostics');
      const diagnostics = await this.driver.getInstanceDiagnostics(instance);
      this.recorder.snapshotDiagnostics(instance, diagnostics.state, diagnostics, null);
      return diagnostics;
    });
  }

  /** Nova: get_diagnostics (legacy flat dict). */
  async getDiagnostics(ctx: RequestContext, instance: ResolvedInstance): Promise<LegacyDiagnostics> {
    return this.recorder.withFault(ctx, instance, async () => {
      await this.requireRunning(instance, 'get_diagnostics');
      const legacy = await this.driver.getDiagnostics(instance);
      this.recorder.snapshotDiagnostics(instance, 'running', null, legacy);
      return legacy;
    });
  }

  /** Nova: get_vnc_console. Writes a console auth token row and returns the token in clear. */
  async getVncConsole(ctx: RequestContext, instance: ResolvedInstance, consoleType: string): Promise<ConsoleConnectInfo> {
    return this.recorder.withFault(ctx, instance, async () => {
      if (!this.settings.vncEnabled) throw new ConsoleTypeUnavailable(consoleType);
      if (consoleType !== 'novnc') throw new ConsoleTypeInvalid(consoleType);
      const endpoint = await this.notReadyIfMissing(instance, () => this.driver.getVncConsole(instance));
      const host = WILDCARD_HOSTS.has(endpoint.host) ? this.settings.vncProxyClientAddress : endpoint.host;
      return this.authorizeConsole(ctx, instance, consoleType, { ...endpoint, host }, this.settings.novncProxyBaseUrl);
    });
  }

  /** Nova: get_serial_console. */
  async getSerialConsole(ctx: RequestContext, instance: ResolvedInstance, consoleType: string): Promise<ConsoleConnectInfo> {
    return this.recorder.withFault(ctx, instance, async () => {
      if (!this.settings.serialEnabled) throw new ConsoleTypeUnavailable(consoleType);
      if (consoleType !== 'serial') throw new ConsoleTypeInvalid(consoleType);
      const endpoint = await this.notReadyIfMissing(instance, () => this.driver.getSerialConsole(instance));
      const host = WILDCARD_HOSTS.has(endpoint.host) ? this.settings.serialProxyClientAddress : endpoint.host;
      return this.authorizeConsole(ctx, instance, consoleType, { ...endpoint, host }, this.settings.serialBaseUrl);
    });
  }

  /** Nova: get_spice_console, get_rdp_console, get_mks_console: no novamon guest has one. */
  async unavailableConsole(ctx: RequestContext, instance: ResolvedInstance, consoleType: string): Promise<never> {
    return this.recorder.withFault(ctx, instance, () => Promise.reject(new ConsoleTypeUnavailable(consoleType)));
  }

  /**
   * An operation this host does not perform (src/compute/unsupported.ts), answered as nova-compute answers
   * it with a driver that lacks it: NotImplementedError through the same decorators.
   */
  async refuseUnsupported(ctx: RequestContext, instance: ResolvedInstance, op: UnsupportedOperation): Promise<never> {
    const refuse = async (): Promise<never> => {
      if (op.errorState) {
        await this.recorder.save(ctx, instance, { vmState: VmState.ERROR }).catch((err: unknown) => this.log.warn({ instance_uuid: instance.uuid, err: String(err) }, 'could not set the instance to ERROR'));
      }
      throw new NotImplementedByDriver(op.method);
    };
    if (op.event) return this.recorder.withEvent(ctx, instance, op.action, op.method, refuse, { revertsTaskState: op.revertsTaskState });
    return this.recorder.withFaultReverting(ctx, instance, op.method, refuse);
  }

  /** Nova: validate_console_port. True when the guest's console of that type is still on `port`. */
  async validateConsolePort(_ctx: RequestContext, instance: ResolvedInstance, port: number, consoleType: string): Promise<boolean> {
    const endpoint =
      consoleType === 'serial' ? await this.driver.getSerialConsole(instance) : await this.driver.getVncConsole(instance);
    return endpoint.port === port;
  }

  /**
   * Nova: stop_instance. Clean shutdown waits shutdown_timeout for the guest, then forces. A guest
   * already off also accepts an instance whose task_state was never set (Nova's expected [powering-off, None]).
   */
  async stopInstance(ctx: RequestContext, instance: ResolvedInstance, cleanShutdown: boolean): Promise<void> {
    await this.recorder.withEvent(ctx, instance, 'stop', 'stop_instance', async (event) => {
      const before = await this.currentPowerState(instance);
      const expected: Array<string | null> = [TaskState.POWERING_OFF];
      if (OFF_STATES.has(before)) expected.push(null);
      this.notifier.instanceAction(ctx, instance, 'power_off', 'start');
      const timeout = cleanShutdown ? this.settings.shutdownTimeout : 0;
      await this.driver.powerOff(instance, { timeout, retryInterval: this.settings.shutdownRetryInterval });
      const powerState = await this.currentPowerState(instance);
      await event.saveLast({ powerState, vmState: VmState.STOPPED, taskState: null }, expected);
      this.notifier.instanceAction(ctx, instance, 'power_off', 'end');
    });
  }

  /** Nova: start_instance. */
  async startInstance(ctx: RequestContext, instance: ResolvedInstance): Promise<void> {
    await this.recorder.withEvent(ctx, instance, 'start', 'start_instance', async (event) => {
      this.notifier.instanceAction(ctx, instance, 'power_on', 'start');
      await this.driver.powerOn(instance);
      const powerState = await this.currentPowerState(instance);
      await event.saveLast({ powerState, vmState: VmState.ACTIVE, taskState: null }, TaskState.POWERING_ON);
      this.notifier.instanceAction(ctx, instance, 'power_on', 'end');
    });
  }

  /** Nova: pause_instance. */
  async pauseInstance(ctx: RequestContext, instance: ResolvedInstance): Promise<void> {
    await this.recorder.withEvent(ctx, instance, 'pause', 'pause_instance', async (event) => {
      this.notifier.instanceAction(ctx, instance, 'pause', 'start');
      await this.driver.pause(instance);
      const powerState = await this.currentPowerState(instance);
      await event.saveLast({ powerState, vmState: VmState.PAUSED, taskState: null }, TaskState.PAUSING);
      this.notifier.instanceAction(ctx, instance, 'pause', 'end');
    });
  }

  /** Nova: unpause_instance. */
  async unpauseInstance(ctx: RequestContext, instance: ResolvedInstance): Promise<void> {
    await this.recorder.withEvent(ctx, instance, 'unpause', 'unpause_instance', async (event) => {
      this.notifier.instanceAction(ctx, instance, 'unpause', 'start');
      await this.driver.unpause(instance);
      const powerState = await this.currentPowerState(instance);
      await event.saveLast({ powerState, vmState: VmState.ACTIVE, taskState: null }, TaskState.UNPAUSING);
      this.notifier.instanceAction(ctx, instance, 'unpause', 'end');
    });
  }

  /**
   * Nova: reboot_instance (_reboot_instance). task_state goes reboot_pending(_hard) then
   * reboot_started(_hard) before the driver reboots. A failed reboot of a guest that still runs
   * leaves a fault and ends ACTIVE; otherwise the instance goes to ERROR and the error propagates.
   */
  async rebootInstance(ctx: RequestContext, instance: ResolvedInstance, rebootType: RebootType): Promise<void> {
    const hard = rebootType === 'HARD';
    await this.recorder.withEvent(ctx, instance, 'reboot', 'reboot_instance', async (event) => {
      const vmState = this.stores.instances.details(instance.uuid)?.['vm_state'] === VmState.RESCUED ? VmState.RESCUED : VmState.ACTIVE;
      this.notifier.instanceAction(ctx, instance, 'reboot', 'start');
      const pending = hard ? TaskState.REBOOT_PENDING_HARD : TaskState.REBOOT_PENDING;
      const expected = hard ? HARD_REBOOT_STATES : SOFT_REBOOT_STATES;
      await this.recorder.save(ctx, instance, { taskState: pending, powerState: await this.currentPowerState(instance) }, expected);
      const started = hard ? TaskState.REBOOT_STARTED_HARD : TaskState.REBOOT_STARTED;
      let powerState: number | null = null;
      try {
        await this.recorder.save(ctx, instance, { taskState: started }, pending);
        await this.driver.reboot(instance, rebootType);
      } catch (err) {
        powerState = await this.currentPowerState(instance);
        if (powerState !== PowerState.RUNNING) {
          this.log.error({ instance_uuid: instance.uuid, err: String(err) }, 'Cannot reboot instance');
          await this.recorder.save(ctx, instance, { vmState: VmState.ERROR, taskState: null });
          throw err;
        }
        this.log.warn({ instance_uuid: instance.uuid, err: String(err) }, 'Reboot failed but instance is running');
        await this.recorder.recordFault(ctx, instance, err);
        this.notifier.instanceAction(ctx, instance, 'reboot', 'error', err);
      }
      powerState ??= await this.currentPowerState(instance);
      await event.saveLast({ powerState, vmState, taskState: null });
      this.notifier.instanceAction(ctx, instance, 'reboot', 'end');
    });
  }

  /**
   * novamon: list_instances, what novamon-manage prints while this service holds the embedded database.
   * Admin only. The store's own rows (every host's with allHosts); a store without rows of its own
   * (Nova's, through the conductor) answers with this host's records.
   */
  async listInstances(ctx: RequestContext, opts: { allHosts: boolean }): Promise<unknown[]> {
    if (!ctx.isAdmin) throw new PolicyNotAuthorized(LIST_INSTANCES_RULE);
    const store = this.stores.instances;
    if (store.listRows) return store.listRows(opts.allHosts ? {} : { host: this.settings.host });
    return store.listByHost(this.settings.host);
  }

  /** novamon: QMP or HMP passthrough. Admin only, allow-listed, audited before it runs. */
  async monitorCommand(ctx: RequestContext, instance: ResolvedInstance, command: MonitorCommand): Promise<unknown> {
    const decision = this.monitorPolicy.check(ctx, command);
    const audited = {
      kind: command.kind,
      command: command.kind === 'qmp' ? command.execute : command.commandLine,
      arguments: command.kind === 'qmp' ? (command.arguments ?? null) : null,
      refusal: decision.allowed ? null : decision.error,
    };
    return this.recorder.audited(ctx, instance, audited, () => this.driver.monitorCommand(instance, command));
  }

  /**
   * Nova: set_host_enabled, called by nova-api when an operator enables or disables this compute
   * service. Nova's only action is the placement trait (none here) and the driver's answer; a disabled
   * host keeps serving its instances and reporting, so this only acknowledges and logs.
   */
  setHostEnabled(ctx: RequestContext, enabled: boolean): string {
    this.log.info({ request_id: ctx.requestId, enabled }, enabled ? 'compute service enabled by the control plane' : 'compute service disabled by the control plane');
    return enabled ? 'enabled' : 'disabled';
  }

  /** Nova: get_host_uptime, in the format `uptime` prints. */
  getHostUptime(): string {
    return formatUptime(new Date(), os.uptime(), os.loadavg());
  }

  private async authorizeConsole(
    ctx: RequestContext,
    instance: ResolvedInstance,
    consoleType: string,
    endpoint: { host: string; port: number; internalAccessPath: string | null },
    accessUrlBase: string,
  ): Promise<ConsoleConnectInfo> {
    const token = await this.stores.tokens.authorize({
      consoleType,
      host: endpoint.host,
      port: endpoint.port,
      internalAccessPath: endpoint.internalAccessPath,
      instanceUuid: instance.uuid,
      accessUrlBase,
      ttlSeconds: this.settings.tokenTtl,
    }, ctx);
    const accessUrl =
      consoleType === 'novnc' ? `${accessUrlBase}?path=%3Ftoken%3D${token}` : `${accessUrlBase}?token=${token}`;
    return { host: endpoint.host, port: endpoint.port, internalAccessPath: endpoint.internalAccessPath, token, accessUrl };
  }

  /** Nova maps a missing guest to InstanceNotReady for console requests. */
  private async notReadyIfMissing<T>(instance: ResolvedInstance, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof InstanceNotFound) throw new InstanceNotReady(instance.uuid, { cause: err });
      throw err;
    }
  }

  private async currentPowerState(instance: ResolvedInstance): Promise<PowerState> {
    try {
      return (await this.driver.getInfo(instance)).state;
    } catch (err) {
      if (err instanceof InstanceNotFound) return PowerState.NOSTATE;
      throw err;
    }
  }

  private async requireRunning(instance: ResolvedInstance, method: string): Promise<void> {
    const state = await this.currentPowerState(instance);
    if (state !== PowerState.RUNNING) {
      throw new InstanceInvalidState(instance.uuid, 'power_state', powerStateName(state), method);
    }
  }

  /**
   * Resolves an RPC Instance argument to a guest on this host (see InstanceResolver). A guest
   * addressed by id alone that has no row yet (it appeared after start-up) is looked for on the
   * hypervisor once before InstanceNotFound.
   */
  async resolve(identity: InstanceIdentity): Promise<ResolvedInstance> {
    try {
      return await this.resolver.resolve(identity);
    } catch (err) {
      if (!(err instanceof InstanceNotFound) || identity.uuid !== undefined || identity.id === undefined) throw err;
      await this.sync.discover();
      return this.resolver.resolve(identity);
    }
  }
}

/** Nova's _tail_log: last `length` lines of the bytes, split and joined on \n; 0 gives nothing. */
export function tailLog(output: Buffer, length: number | null): Buffer {
  if (length === null) return output;
  if (length <= 0) return Buffer.alloc(0);
  let lines = 0;
  // Walk back over `length` newline separators: the last `length` elements of split('\n').
  for (let i = output.length - 1; i >= 0; i--) {
    if (output[i] === 0x0a && ++lines === length) return output.subarray(i + 1);
  }
  return output;
}

/** Python's bytes.decode('ascii', 'replace'): every byte >= 0x80 becomes U+FFFD. */
export function decodeAsciiReplace(bytes: Buffer): string {
  let ascii = true;
  for (const b of bytes) {
    if (b >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return bytes.toString('latin1');
  let out = '';
  for (const b of bytes) out += b >= 0x80 ? '\ufffd' : String.fromCharCode(b);
  return out;
}

/** `uptime`'s line: " 10:42:01 up 1 day,  3:04,  0 users,  load average: 0.52, 0.58, 0.59". */
export function formatUptime(now: Date, uptimeSeconds: number, load: number[]): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
  const days = Math.floor(uptimeSeconds / 86400);
  const hours = Math.floor((uptimeSeconds % 86400) / 3600);
  const minutes = Math.floor((uptimeSeconds % 3600) / 60);
  let up = days > 0 ? `${days} day${days === 1 ? '' : 's'}, ` : '';
  up += hours > 0 ? `${String(hours).padStart(2, ' ')}:${pad(minutes)}` : `${minutes} min`;
  const avg = load.slice(0, 3).map((l) => l.toFixed(2)).join(', ');
  return ` ${clock} up ${up},  0 users,  load average: ${avg}`;
}
