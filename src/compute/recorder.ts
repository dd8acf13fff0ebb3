// What Nova's decorators do around manager methods: wrap_instance_fault (a fault on error),
// wrap_instance_event (an event under the caller's instance action, Success or Error with its
// traceback), reverts_task_state and wrap_exception; and instance.save with expected_task_state.
// Diagnostics snapshots go through a batched store.

import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import { InstanceNotFound, NovaException } from '../exception.js';
import type { Logger } from '../logging.js';
import type { Diagnostics, LegacyDiagnostics } from '../virt/driver.js';
import type { ResolvedInstance } from './instance-resolver.js';
import {
  ComputeLogger,
  ComputeNotifier,
  ComputeSettings,
  ComputeStores,
  isUnexpectedTaskState,
  type ComputeNotifierShape,
  type ComputeSettingsShape,
  type ComputeStoresShape,
  type ExpectedTaskState,
  type InstanceStatesUpdate,
} from './tokens.js';

/** What the monitor audit records of a command, and why it is refused (null when allowed). */
export interface AuditedCommand {
  kind: 'qmp' | 'hmp';
  command: string;
  arguments: Record<string, unknown> | null;
  refusal: Error | null;
}

/** What a power operation under withEvent can do with its event. */
export interface EventScope {
  /**
   * The operation's last instance save: with the event's Success in one write where the store can
   * (ActionStore.saveAndFinishEvent), else a plain save and the event finishes when the operation returns.
   */
  saveLast(update: InstanceStatesUpdate, expectedTaskState?: ExpectedTaskState): Promise<void>;
}

@injectable()
export class InstanceRecorder {
  private readonly log: Logger;

  constructor(
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(ComputeNotifier) private readonly notifier: ComputeNotifierShape,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'recorder' });
  }

  /**
   * A monitor command (passthrough, screendump) between its audit row's begin, durable before anything
   * runs, and finish: ok, error with the message, or refused with `refusal` (then `run` never runs).
   */
  async audited<T>(ctx: RequestContext, instance: ResolvedInstance, command: AuditedCommand, run: () => Promise<T>): Promise<T> {
    const auditId = await this.stores.audit.begin({
      instanceUuid: instance.uuid,
      instanceName: instance.name,
      host: this.settings.host,
      requestId: ctx.requestId,
      userId: ctx.userId,
      projectId: ctx.projectId,
      kind: command.kind,
      command: command.command,
      arguments: command.arguments,
      allowed: command.refusal === null,
    });
    this.log.info(
      { instance_uuid: instance.uuid, request_id: ctx.requestId, user_id: ctx.userId, kind: command.kind, command: command.command.slice(0, 200), allowed: command.refusal === null, audit_id: auditId },
      'monitor command',
    );
    if (command.refusal !== null) {
      await this.stores.audit.finish(auditId, { result: 'refused', error: command.refusal.message, durationMs: 0 });
      throw command.refusal;
    }
    const started = performance.now();
    try {
      const result = await run();
      await this.stores.audit.finish(auditId, { result: 'ok', error: null, durationMs: performance.now() - started });
      return result;
    } catch (err) {
      await this.stores.audit.finish(auditId, { result: 'error', error: (err as Error).message, durationMs: performance.now() - started });
      throw err;
    }
  }

  /** Nova's wrap_instance_fault: any error but InstanceNotFound leaves an instance fault. */
  async withFault<T>(ctx: RequestContext, instance: ResolvedInstance, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      await this.recordFault(ctx, instance, err);
      throw err;
    }
  }

  /**
   * Nova's wrap_exception > reverts_task_state > wrap_instance_event > wrap_instance_fault around a
   * power operation `method` (event `compute_<method>`; `action` names the action the standalone
   * database creates when no API did). The operation saves its own states (see save()), the last of
   * them through `event.saveLast`. On error:
   * a fault, the event finished as Error with the traceback, task_state reset to None unless another
   * task pre-empted this one (UnexpectedTaskStateError), and an exception notification.
   */
  async withEvent<T>(
    ctx: RequestContext,
    instance: ResolvedInstance,
    action: string,
    method: string,
    fn: (event: EventScope) => Promise<T>,
    opts: { revertsTaskState?: boolean } = {},
  ): Promise<T> {
    const event = `compute_${method}`;
    const requestId = ctx.requestId;
    try {
      const actions = this.stores.actions;
      const handle = await actions.eventStart(ctx, { instanceUuid: instance.uuid, action, event, host: this.settings.host });
      let finished = false;
      const scope: EventScope = {
        saveLast: async (update, expectedTaskState) => {
          if (!actions.saveAndFinishEvent) return this.save(ctx, instance, update, expectedTaskState);
          await actions.saveAndFinishEvent(ctx, handle, { uuid: instance.uuid, update, ...(expectedTaskState === undefined ? {} : { expectedTaskState }) });
          finished = true;
        },
      };
      let result: T;
      try {
        result = await this.withFault(ctx, instance, () => fn(scope));
      } catch (err) {
        if (!finished) {
          await this.finishEvent(ctx, instance, () =>
            actions.eventFinish(ctx, handle, { result: 'Error', details: faultMessage(err), traceback: traceback(err) }),
          );
        }
        throw err;
      }
      if (!finished) await this.finishEvent(ctx, instance, () => actions.eventFinish(ctx, handle, { result: 'Success', details: null, traceback: null }));
      this.log.info({ instance_uuid: instance.uuid, request_id: requestId, event }, `${action} done`);
      return result;
    } catch (err) {
      await this.afterFailure(ctx, instance, method, err, opts.revertsTaskState !== false);
      throw err;
    }
  }

  /**
   * Nova's wrap_exception > reverts_task_state > wrap_instance_fault, for a method without an event
   * (reserve_block_device_name): a fault, task_state reset as withEvent does, an exception notification.
   */
  async withFaultReverting<T>(ctx: RequestContext, instance: ResolvedInstance, method: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.withFault(ctx, instance, fn);
    } catch (err) {
      await this.afterFailure(ctx, instance, method, err, true);
      throw err;
    }
  }

  /** reverts_task_state (unless another task pre-empted this one) and wrap_exception's notification. */
  private async afterFailure(ctx: RequestContext, instance: ResolvedInstance, method: string, err: unknown, revertsTaskState: boolean): Promise<void> {
    if (isUnexpectedTaskState(err)) {
      this.log.info({ instance_uuid: instance.uuid, request_id: ctx.requestId, err: (err as Error).message }, 'Task possibly preempted');
    } else if (revertsTaskState) {
      await this.revertTaskState(ctx, instance);
    }
    this.notifier.exception(ctx, instance, method, err);
  }

  /** Nova's instance.save(expected_task_state=...): the fields the operation set, checked where the store can. */
  async save(ctx: RequestContext, instance: ResolvedInstance, update: InstanceStatesUpdate, expectedTaskState?: ExpectedTaskState): Promise<void> {
    await this.stores.instances.updateStates(instance.uuid, update, expectedTaskState === undefined ? { ctx } : { ctx, expectedTaskState });
  }

  /** reverts_task_state: task_state None, no expectation; a vanished instance is not an error. */
  private async revertTaskState(ctx: RequestContext, instance: ResolvedInstance): Promise<void> {
    try {
      await this.stores.instances.updateStates(instance.uuid, { taskState: null }, { ctx });
    } catch (err) {
      if (err instanceof InstanceNotFound || (err as { className?: unknown }).className === 'InstanceNotFound') return;
      this.log.warn({ instance_uuid: instance.uuid, err: String(err) }, 'Failed to revert task state for instance');
    }
  }

  /** EventReporter's graceful exit: a failure to finish the event is logged, never raised. */
  private async finishEvent(_ctx: RequestContext, instance: ResolvedInstance, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.log.warn({ instance_uuid: instance.uuid, err: String(err) }, 'could not finish the instance action event');
    }
  }

  /** Queues a diagnostics snapshot; a failed write is logged, never fails the call that read it. */
  snapshotDiagnostics(instance: ResolvedInstance, state: string, diagnostics: Diagnostics | null, legacy: LegacyDiagnostics | null): void {
    this.stores.diagnostics
      .record({ instanceUuid: instance.uuid, host: this.settings.host, state, diagnostics, legacy })
      .catch((err: unknown) => this.log.error({ instance_uuid: instance.uuid, err }, 'diagnostics snapshot not written'));
  }

  /** Nova's add_instance_fault_from_exc: code, message, and the traceback only for a 500. */
  async recordFault(ctx: RequestContext, instance: ResolvedInstance, err: unknown): Promise<void> {
    if (err instanceof InstanceNotFound || (err as { className?: unknown } | null)?.className === 'InstanceNotFound') return;
    const code = err instanceof NovaException ? err.code : 500;
    const message = faultMessage(err);
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : undefined;
    this.log.warn({ instance_uuid: instance.uuid, request_id: ctx.requestId, err: message, cause }, 'instance fault');
    try {
      await this.stores.faults.record({ instanceUuid: instance.uuid, code, message, details: code === 500 ? traceback(err) : '', host: this.settings.host }, ctx);
    } catch (dbErr) {
      this.log.error({ instance_uuid: instance.uuid, err: dbErr }, 'instance fault not recorded');
    }
  }
}

/** Nova's format_message() for its exceptions, else the class name; at most 255 characters. */
export function faultMessage(err: unknown): string {
  if (err instanceof NovaException) return err.message.slice(0, 255);
  return (err instanceof Error ? err.name || 'Error' : typeof err).slice(0, 255);
}

/** A short traceback for faults and events: class and message, then our frames without file paths. */
export function traceback(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const name = err instanceof NovaException ? `${err.module}.${err.className}` : err.name;
  const frames = (err.stack ?? '')
    .split('\n')
    .slice(1, 8)
    .map((l) => l.trim().replace(/\(?(file:\/\/)?\/[^\s)]*\/(src|dist)\//, '(').replace(/^at /, '  at '));
  return [`${name}: ${err.message}`, ...frames].join('\n');
}
