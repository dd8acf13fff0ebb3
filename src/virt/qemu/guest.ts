// One QEMU guest's operations, addressed by its validated name: monitor commands with mapped errors,
// finding its pid, power actions (pause, reboot, clean and forced off, start or relaunch), and the
// record of its command line that lets a stopped guest be started again.

import { lstat, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { InstanceNotFound, InstanceNotRunning, InternalError } from '../../exception.js';
import type { QmpMonitorRegistry } from '../../qmp/monitor-registry.js';
import type { PowerOffOptions, RebootType } from '../driver.js';
import { pathInside } from '../instance-name.js';
import { PowerState, powerStateFromQemuStatus } from '../power-state.js';
import { GuestOffline, mapMonitorError } from './errors.js';
import { loadRecord, relaunch, saveRecord, type GuestRecord } from './launcher.js';
import { findPidServing, isAlive, readCmdline, readCwd, verifyPid } from './proc.js';

/** What every guest shares with its driver. */
export interface QemuContext {
  readonly instancesPath: string;
  readonly stateDir: string;
  readonly monitors: QmpMonitorRegistry;
  readonly commandTimeoutMs: number;
  readonly softRebootWaitMs: number;
  readonly logger: Logger;
  host(): string;
  /**
   * Runs after a successful command until it has succeeded once on the current connection: learns the
   * guest's uuid and state and records its command line. Concurrent callers share one run; it uses
   * `execDirect` so it does not wait for itself.
   */
  inspect(guest: QemuGuest, freshConnection: boolean): Promise<void>;
  /** The pid we last saw serving a guest, to skip the pidfile/proc lookup when it is still valid. */
  readonly pids: Map<string, number>;
  /** The live monitor connection under which a guest's cached pid was last verified. */
  readonly pidVerifiedFor: Map<string, object>;
  /** The guest's own uuid (query-uuid) when we have seen it. */
  knownUuid(name: string): string | null;
  /** We found the guest's QEMU gone (e.g. before a relaunch): remember it as off. */
  observedOffline(name: string): void;
}


const POLL_MS = 200;

export class QemuGuest {
  readonly socketPath: string;
  readonly pidfilePath: string;
  readonly consoleLogPath: string;

  constructor(
    private readonly ctx: QemuContext,
    readonly name: string,
    readonly uuid: string | null = null,
  ) {
    this.socketPath = pathInside(ctx.instancesPath, name, '.monitor');
    this.pidfilePath = pathInside(ctx.instancesPath, name, '.pid');
    this.consoleLogPath = pathInside(ctx.instancesPath, name, '.console.log');
  }

  private get log(): Logger {
    return this.ctx.logger.child({ instance: this.name, ...(this.uuid ? { instance_uuid: this.uuid } : {}) });
  }

  /** The id Nova errors name the guest by: its uuid when the caller gave one. */
  get errorId(): string {
    return this.uuid ?? this.name;
  }

  // ---- monitor -------------------------------------------------------------------------------

  async exec<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.viaMonitor(() => this.ctx.monitors.execute<T>(this.socketPath, command, args, { timeoutMs: this.ctx.commandTimeoutMs }), true);
  }

  /** exec without the inspection hook: for the inspection itself. */
  async execDirect<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.viaMonitor(() => this.ctx.monitors.execute<T>(this.socketPath, command, args, { timeoutMs: this.ctx.commandTimeoutMs }), false);
  }

  async hmp(commandLine: string): Promise<string> {
    return this.viaMonitor(() => this.ctx.monitors.hmp(this.socketPath, commandLine, { timeoutMs: this.ctx.commandTimeoutMs }), true);
  }

  private async viaMonitor<T>(call: () => Promise<T>, inspect: boolean): Promise<T> {
    // A missing socket means no QEMU: say so without asking the registry to connect to nothing. A
    // live connection proves the socket (it closes when QEMU goes), so the hot path skips the lstat.
    const fresh = !this.ctx.monitors.has(this.socketPath);
    if (fresh && !(await this.socketExists())) throw new GuestOffline(this.socketPath, 'ENOENT');
    let result: T;
    try {
      result = await call();
    } catch (err) {
      throw mapMonitorError(err, {
        name: this.name,
        uuid: this.uuid,
        socketPath: this.socketPath,
        host: this.ctx.host(),
        commandTimeoutMs: this.ctx.commandTimeoutMs,
      });
    }
    if (inspect) await this.ctx.inspect(this, fresh);
    return result;
  }

  /** QEMU's run status, or 'offline' when no QEMU serves the socket. */
  async status(): Promise<string> {
    try {
      return (await this.exec<{ status: string }>('query-status')).status;
    } catch (err) {
      if (err instanceof GuestOffline) return 'offline';
      throw err;
    }
  }

  async powerState(): Promise<PowerState> {
    const status = await this.status();
    return status === 'offline' ? PowerState.SHUTDOWN : powerStateFromQemuStatus(status);
  }

  // ---- what exists ---------------------------------------------------------------------------

  async socketExists(): Promise<boolean> {
    try {
      return (await lstat(this.socketPath)).isSocket();
    } catch {
      return false;
    }
  }

  record(): Promise<GuestRecord | null> {
    return loadRecord(this.ctx.stateDir, this.name);
  }

  /** A guest "exists" while its socket does or we hold a record of how to start it. */
  async exists(): Promise<boolean> {
    return (await this.socketExists()) || (await this.record()) !== null;
  }

  /** For an offline guest: the error a method that needs it running raises. */
  async notRunning(): Promise<Error> {
    return (await this.exists()) ? new InstanceNotRunning(this.errorId) : new InstanceNotFound(this.errorId);
  }

  /** The pid of the QEMU serving this guest: the pidfile when it is right, else a /proc scan. */
  async pid(): Promise<number | null> {
    const cached = this.ctx.pids.get(this.name);
    if (cached !== undefined) {
      // While we hold a live monitor connection verified against this pid, that QEMU is still the one
      // serving the socket: re-reading /proc on every diagnostics call would prove nothing new.
      const live = this.ctx.monitors.connectionOf(this.socketPath);
      if (live !== null && this.ctx.pidVerifiedFor.get(this.name) === live) return cached;
      if (await verifyPid(cached, this.socketPath)) {
        if (live !== null) this.ctx.pidVerifiedFor.set(this.name, live);
        return cached;
      }
    }
    this.ctx.pidVerifiedFor.delete(this.name);
    let pid: number | null = null;
    try {
      const fromFile = Number((await readFile(this.pidfilePath, 'latin1')).trim());
      if (Number.isInteger(fromFile) && fromFile > 0 && (await verifyPid(fromFile, this.socketPath))) pid = fromFile;
    } catch {
      // No pidfile: QEMU was started without -pidfile, or somewhere else.
    }
    pid ??= await findPidServing(this.socketPath);
    if (pid === null) this.ctx.pids.delete(this.name);
    else this.ctx.pids.set(this.name, pid);
    return pid;
  }

  /** Record QEMU's command line from /proc so the guest can be relaunched after it exits. */
  async recordCommandLine(uuid: string | null, poweredOff = false): Promise<GuestRecord | null> {
    const pid = await this.pid();
    const argv = pid === null ? null : await readCmdline(pid);
    if (pid === null || argv === null) return null;
    const record: GuestRecord = {
      name: this.name,
      uuid,
      argv,
      cwd: (await readCwd(pid)) ?? '/',
      recordedAt: new Date().toISOString(),
      poweredOff,
    };
    await saveRecord(this.ctx.stateDir, record);
    return record;
  }

  // ---- power ---------------------------------------------------------------------------------

  async pause(): Promise<void> {
    const status = await this.status();
    if (status === 'offline') throw await this.notRunning();
    const state = powerStateFromQemuStatus(status);
    if (state === PowerState.PAUSED) return;
    if (state !== PowerState.RUNNING && state !== PowerState.SUSPENDED) throw new InstanceNotRunning(this.errorId);
    await this.exec('stop');
  }

  async unpause(): Promise<void> {
    const status = await this.status();
    if (status === 'offline') throw await this.notRunning();
    const state = powerStateFromQemuStatus(status);
    if (state === PowerState.RUNNING) return;
    // QEMU refuses `cont` after a shutdown or panic until the guest is reset: that is not "unpause".
    if (state !== PowerState.PAUSED) throw new InstanceNotRunning(this.errorId);
    await this.exec('cont');
  }

  async reboot(type: RebootType): Promise<void> {
    const status = await this.status();
    if (status === 'offline') {
      // Nova's hard reboot recreates the guest, so rebooting a powered-off guest starts it.
      await this.start();
      return;
    }
    if (type === 'SOFT' && status === 'running') {
      // Nova's soft reboot: ask the guest to shut down, wait, then start it; a guest that ignores
      // ACPI gets a hard reboot instead.
      await this.exec('system_powerdown');
      if (await this.waitForStatus((s) => s === 'shutdown', this.ctx.softRebootWaitMs)) {
        await this.resetAndContinue();
        return;
      }
      this.log.info({ waitedMs: this.ctx.softRebootWaitMs }, 'guest ignored the ACPI shutdown request; rebooting hard');
    }
    await this.exec('system_reset');
    const after = await this.status();
    if (after !== 'running' && after !== 'offline') await this.cont(after);
  }

  async powerOff(options: PowerOffOptions): Promise<void> {
    const status = await this.status();
    if (status === 'offline') {
      if (!(await this.exists())) throw new InstanceNotFound(this.errorId);
      return;
    }
    if (status === 'shutdown') return;
    if (options.timeout > 0) {
      const deadline = Date.now() + options.timeout * 1000;
      const retryMs = Math.max(1, options.retryInterval) * 1000;
      while (Date.now() < deadline) {
        await this.exec('system_powerdown');
        const wait = Math.min(retryMs, deadline - Date.now());
        if (await this.waitForStatus((s) => s === 'shutdown' || s === 'offline', wait)) {
          this.log.info('guest powered off cleanly');
          return;
        }
      }
      this.log.info({ timeout: options.timeout }, 'guest did not power off within the timeout; forcing it off');
    }
    await this.forceOff();
  }

  /**
   * Forced off: record the command line, then `quit` QEMU (falling back to signals) so the guest is
   * off in a way `get_info` reports as SHUTDOWN and power_on can undo by relaunching.
   */
  private async forceOff(): Promise<void> {
    const previous = await this.record();
    const uuid = this.ctx.knownUuid(this.name) ?? previous?.uuid ?? null;
    const recorded = await this.recordCommandLine(uuid, true);
    if (!recorded) {
      if (previous) await saveRecord(this.ctx.stateDir, { ...previous, poweredOff: true });
      else this.log.warn('no command line could be recorded; power_on will not be able to start this guest');
    }
    const pid = await this.pid();
    try {
      await this.exec('quit');
    } catch (err) {
      // QEMU may close the socket before the reply reaches us: that is the quit working.
      if (!(err instanceof InstanceNotRunning || err instanceof GuestOffline)) throw err;
    }
    if (pid !== null && !(await this.waitForExit(pid, 10_000))) {
      this.log.warn({ pid }, 'QEMU did not exit after quit; sending SIGTERM');
      signal(pid, 'SIGTERM');
      if (!(await this.waitForExit(pid, 5000))) {
        this.log.warn({ pid }, 'QEMU ignored SIGTERM; sending SIGKILL');
        signal(pid, 'SIGKILL');
        await this.waitForExit(pid, 5000);
      }
    }
    await this.ctx.monitors.drop(this.socketPath).catch((err: unknown) => this.log.debug({ err }, 'dropping monitor'));
  }

  /** Power on: relaunch QEMU from its record when it is gone, else reset/continue the live one. */
  async start(): Promise<void> {
    const status = await this.status();
    if (status === 'offline') {
      await this.relaunch();
      return;
    }
    if (status === 'running') return;
    await this.cont(status);
  }

  /** Make a live QEMU run: `cont` for a paused one, reset first for one that shut down or crashed. */
  private async cont(status: string): Promise<void> {
    const state = powerStateFromQemuStatus(status);
    if (state === PowerState.SUSPENDED) await this.exec('system_wakeup');
    else if (state === PowerState.PAUSED) await this.exec('cont');
    else await this.resetAndContinue();
  }

  private async resetAndContinue(): Promise<void> {
    await this.exec('system_reset');
    await this.exec('cont');
  }

  private async relaunch(): Promise<void> {
    const record = await this.record();
    if (!record) {
      if (await this.socketExists()) throw new InternalError(`no recorded command line to start ${this.name} from`);
      throw new InstanceNotFound(this.errorId);
    }
    this.ctx.observedOffline(this.name);
    // A QEMU that was killed leaves its socket behind; nobody answers on it (we just checked).
    if (await this.socketExists()) await unlink(this.socketPath).catch(() => undefined);
    await this.ctx.monitors.drop(this.socketPath).catch(() => undefined);
    const timeoutMs = Math.max(60_000, this.ctx.commandTimeoutMs * 3);
    this.log.info('relaunching QEMU from its recorded command line');
    await relaunch(record, this.pidfilePath, timeoutMs);
    await saveRecord(this.ctx.stateDir, { ...record, poweredOff: false });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await this.status();
      if (status === 'running') break;
      if (status !== 'offline') {
        await this.cont(status);
        break;
      }
      if (Date.now() > deadline) throw new InternalError(`${this.name} was relaunched but its monitor never answered`);
      await sleep(POLL_MS);
    }
  }

  /** Poll query-status until `done(status)` or the time is up; true when it matched. */
  private async waitForStatus(done: (status: string) => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (done(await this.status())) return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
    }
  }

  private async waitForExit(pid: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (await isAlive(pid)) {
      if (Date.now() >= deadline) return false;
      await sleep(50);
    }
    return true;
  }
}

/** Signal a process that may have exited meanwhile (ESRCH is fine: it is gone). */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
