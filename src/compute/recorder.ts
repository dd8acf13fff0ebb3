// What Nova's decorators do around manager methods: wrap_instance_fault (a fault row on error),
// wrap_instance_event (an instance action + event with result and traceback), reverts_task_state,
// and the state writes after a power operation. Diagnostics snapshots go through a batched store.

import { randomUUID } from 'node:crypto';
import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import { InstanceNotFound, NovaException } from '../exception.js';
import type { Logger } from '../logging.js';
import type { Diagnostics, LegacyDiagnostics } from '../virt/driver.js';
import type { ResolvedInstance } from './instance-resolver.js';
import { ComputeLogger, ComputeSettings, ComputeStores, type ComputeSettingsShape, type ComputeStoresShape } from './tokens.js';

export interface StateOutcome {
  powerState: number;
  vmState: string;
}

@injectable()
export class InstanceRecorder {
  private readonly log: Logger;

  constructor(
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'recorder' });
  }

  /** Nova's wrap_instance_fault: any error but InstanceNotFound leaves an instance_faults row. */
  async withFault<T>(ctx: RequestContext, instance: ResolvedInstance, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      await this.recordFault(ctx, instance, err);
      throw err;
    }
  }

  /**
   * Nova's wrap_instance_event + reverts_task_state around a power operation: the action (reused
   * for the same request id) and its event; task_state set while it runs and cleared after; the
   * states the operation produced; on error a fault, an Error event with the traceback, and the
   * vm_state `onError` chooses (null keeps it).
   */
  async withEvent(
    ctx: RequestContext,
    instance: ResolvedInstance,
    action: string,
    event: string,
    taskState: string,
    fn: () => Promise<StateOutcome>,
    onError?: () => Promise<string | null>,
  ): Promise<void> {
    const requestId = ctx.requestId ?? `req-${randomUUID()}`;
    const { instances, actions } = this.stores;
    const [actionId] = await Promise.all([
      actions.start({ action, instanceUuid: instance.uuid, requestId, userId: ctx.userId, projectId: ctx.projectId }),
      instances.updateStates(instance.uuid, { taskState }),
    ]);
    const eventId = await actions.startEvent(actionId, event, this.settings.host);
    try {
      const outcome = await fn();
      await Promise.all([
        instances.updateStates(instance.uuid, { powerState: outcome.powerState, vmState: outcome.vmState, taskState: null }),
        actions.finishEvent(actionId, eventId, 'Success', null),
      ]);
      this.log.info({ instance_uuid: instance.uuid, request_id: requestId, event }, `${action} done`);
    } catch (err) {
      let vmState: string | null = null;
      try {
        vmState = onError ? await onError() : null;
      } catch (stateErr) {
        this.log.warn({ instance_uuid: instance.uuid, err: stateErr }, 'could not read the power state after a failure');
      }
      await Promise.all([
        instances.updateStates(instance.uuid, vmState ? { taskState: null, vmState } : { taskState: null }),
        actions.finishEvent(actionId, eventId, 'Error', traceback(err)),
        this.recordFault(ctx, instance, err),
      ]);
      throw err;
    }
  }

  /** Queues a diagnostics snapshot; a failed write is logged, never fails the call that read it. */
  snapshotDiagnostics(instance: ResolvedInstance, state: string, diagnostics: Diagnostics | null, legacy: LegacyDiagnostics | null): void {
    this.stores.diagnostics
      .record({ instanceUuid: instance.uuid, host: this.settings.host, state, diagnostics, legacy })
      .catch((err: unknown) => this.log.error({ instance_uuid: instance.uuid, err }, 'diagnostics snapshot not written'));
  }

  async recordFault(ctx: RequestContext, instance: ResolvedInstance, err: unknown): Promise<void> {
    if (err instanceof InstanceNotFound) return;
    const code = err instanceof NovaException ? err.code : 500;
    const message = err instanceof Error ? err.message : String(err);
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : undefined;
    this.log.warn({ instance_uuid: instance.uuid, request_id: ctx.requestId, err: message, cause }, 'instance fault');
    try {
      await this.stores.faults.record({ instanceUuid: instance.uuid, code, message: message.slice(0, 255), details: traceback(err), host: this.settings.host });
    } catch (dbErr) {
      this.log.error({ instance_uuid: instance.uuid, err: dbErr }, 'instance fault not recorded');
    }
  }
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
