// One QEMU guest's operations, addressed by its validated name: monitor commands (typed, errors mapped),
// its run state from the per-guest model, finding its pid, power actions (pause, reboot, clean and forced
// off, start or relaunch), and the record of its command line that lets a stopped guest be started again.

import { lstat, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { InstanceNotFound, InstanceNotRunning, InternalError } from '../../exception.js';
import * as qmp from '../../qmp/commands.js';
import type { QmpConnection } from '../../qmp/connection.js';
import type { QmpMonitorRegistry } from '../../qmp/monitor-registry.js';
import type { PowerOffOptions, RebootType } from '../driver.js';
import { pathInside } from '../instance-name.js';
import { PowerState, powerStateFromQemuStatus } from '../power-state.js';
import { GuestOffline, mapMonitorError } from './errors.js';
import { capConsoleLogs } from '../console-history.js';
import { consoleLogFilesFromCmdline } from './console.js';
import { loadRecord, planRelaunch, runRelaunch, saveRecord, type GuestRecord } from './launcher.js';
import type { GuestModel } from './model.js';
import { findPidServing, isAlive, readCmdline, readCwd, readExe, verifyPid } from './proc.js';

/** What every guest shares with its driver. */
export interface QemuContext {
  readonly instancesPath: string;
  readonly stateDir: string;
  /** QEMU binaries a guest's process must run and power_on may start ([qemu] emulators). */
  readonly emulators: readonly string[];
  /** Directories besides instances_path a relaunch may take disk images from ([qemu] relaunch_image_paths). */
  readonly relaunchImagePaths: readonly string[];
  readonly monitors: QmpMonitorRegistry;
  readonly commandTimeoutMs: number;
  readonly softRebootWaitMs: number;
  readonly logger: Logger;
  host(): string;
  /**
   * The guest's model on its live monitor connection, connecting and loading it when there is none yet.
   * Rejects with GuestOffline when no QEMU serves the socket. Concurrent callers share one load.
   */
  model(guest: QemuGuest): Promise<GuestModel>;
  /** The pid we last saw serving a guest, to skip the pidfile/proc lookup when it is still valid. */
  readonly pids: Map<string, number>;
  /** The live monitor connection under which a guest's cached pid was last verified. */
  readonly pidVerifiedFor: Map<string, object>;
  /** The guest's own uuid (query-uuid) when we have seen it. */
  knownUuid(name: string): string | null;
  /** We found (or made) the guest's QEMU gone: its model is offline, it is reported off. */
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

  // ---- monitor ----

  /** Sends one command on the guest's shared connection; errors arrive mapped (GuestOffline, MonitorTimeout, ...). */
  readonly exec: qmp.QmpExecutor = (command, args) =>
    this.viaMonitor(() => this.ctx.monitors.execute<unknown>(this.socketPath, command, args, { timeoutMs: this.ctx.commandTimeoutMs }));

  /** The live connection to the guest's monitor, made if needed. */
  connect(): Promise<QmpConnection> {
    return this.viaMonitor(() => this.ctx.monitors.get(this.socketPath));
  }

  private async viaMonitor<T>(call: () => Promise<T>): Promise<T> {
    // A missing socket means no QEMU: say so without asking the registry to connect to nothing. A
    // live connection proves the socket (it closes when QEMU goes), so the hot path skips the lstat.
    if (!this.ctx.monitors.has(this.socketPath) && !(await this.socketExists())) throw new GuestOffline(this.socketPath, 'ENOENT');
    try {
      return await call();
    } catch (err) {
      throw mapMonitorError(err, {
        name: this.name,
        uuid: this.uuid,
        socketPath: this.socketPath,
        host: this.ctx.host(),
        commandTimeoutMs: this.ctx.commandTimeoutMs,
      });
    }
  }

  /** The guest's model, or null when no QEMU serves it. */
  async model(): Promise<GuestModel | null> {
    try {
      return await this.ctx.model(this);
    } catch (err) {
      if (err instanceof GuestOffline) return null;
      throw err;
    }
  }

  /** QEMU's run status as the model knows it (no command), or 'offline' when no QEMU serves the socket. */
  async status(): Promise<string> {
    return (await this.model())?.status ?? 'offline';
  }

  /** The run status asked of QEMU now (for power actions, whose next step depends on it); the model learns it too. */
  async freshStatus(): Promise<string> {
    const model = await this.model();
    if (!model) return 'offline';
    try {
      return await model.refreshStatus('query-status');
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
    return loadRecord(this.ctx.stateDir, this.name, (why) => this.log.error({ reason: why }, 'launch record refused: not written by novamon'));
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
      if (await verifyPid(cached, this.socketPath, this.ctx.emulators)) {
        if (live !== null) this.ctx.pidVerifiedFor.set(this.name, live);
        return cached;
      }
    }
    this.ctx.pidVerifiedFor.delete(this.name);
    let pid: number | null = null;
    try {
      const fromFile = Number((await readFile(this.pidfilePath, 'latin1')).trim());
      if (Number.isInteger(fromFile) && fromFile > 0 && (await verifyPid(fromFile, this.socketPath, this.ctx.emulators))) pid = fromFile;
    } catch {
      // No pidfile: QEMU was started without -pidfile, or somewhere else.
    }
    pid ??= await findPidServing(this.socketPath, this.ctx.emulators);
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
      exe: await readExe(pid),
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
    await qmp.stop(this.exec);
  }

  async unpause(): Promise<void> {
    const status = await this.status();
    if (status === 'offline') throw await this.notRunning();
    const state = powerStateFromQemuStatus(status);
    if (state === PowerState.RUNNING) return;
    // QEMU refuses `cont` after a shutdown or panic until the guest is reset: that is not "unpause".
    if (state !== PowerState.PAUSED) throw new InstanceNotRunning(this.errorId);
    await qmp.cont(this.exec);
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
      await qmp.systemPowerdown(this.exec);
      if (await this.waitForStatus((s) => s === 'shutdown', this.ctx.softRebootWaitMs)) {
        await this.resetAndContinue();
        return;
      }
      this.log.info({ waitedMs: this.ctx.softRebootWaitMs }, 'guest ignored the ACPI shutdown request; rebooting hard');
    }
    await qmp.systemReset(this.exec);
    // RESET comes after the reply, once the main loop has reset the machine: ask rather than trust the model.
    const after = await this.freshStatus();
    if (after !== 'running' && after !== 'offline') await this.cont(after);
  }

  async powerOff(options: PowerOffOptions): Promise<void> {
    const status = await this.status();
    if (status === 'offline') {
      if (!(await this.exists())) throw new InstanceNotFound(this.errorId);
      return;
    }
    if (status === 'shutdown') return;
    // As Nova's libvirt driver: a crashed guest (panicked, or QEMU's internal error) cannot answer ACPI.
    if (options.timeout > 0 && powerStateFromQemuStatus(status) !== PowerState.CRASHED) {
      const deadline = Date.now() + options.timeout * 1000;
      const retryMs = Math.max(1, options.retryInterval) * 1000;
      while (Date.now() < deadline) {
        await qmp.systemPowerdown(this.exec);
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
      await qmp.quit(this.exec);
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
    this.ctx.observedOffline(this.name);
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
    if (state === PowerState.SUSPENDED) await qmp.systemWakeup(this.exec);
    else if (state === PowerState.PAUSED) await qmp.cont(this.exec);
    else await this.resetAndContinue();
  }

  private async resetAndContinue(): Promise<void> {
    await qmp.systemReset(this.exec);
    await qmp.cont(this.exec);
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
    // Checked before anything acts on the record's files: the log paths below come from the record too.
    const plan = await planRelaunch(record, this.pidfilePath, {
      emulators: this.ctx.emulators, instancesPath: this.ctx.instancesPath, imagePaths: this.ctx.relaunchImagePaths,
    });
    // The relaunched QEMU appends to its console log: earlier boots stay, cut to a cap first.
    await capConsoleLogs(consoleLogFilesFromCmdline(record.argv).map((f) => path.resolve(record.cwd, f)), this.log);
    this.log.info('relaunching QEMU from its recorded command line');
    await runRelaunch(record, plan, timeoutMs);
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
      if (done(await this.freshStatus())) return true;
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
