// What only the monitor can tell, served to callers: the guest's screen (novamon's screenshot, audited
// like a monitor command) and Nova's trigger_crash_dump (an NMI; recorded as Nova's manager does with
// wrap_instance_event + wrap_instance_fault, without touching task_state or power_state).

import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import type { Logger } from '../logging.js';
import { ComputeDriver, type Screenshot } from '../virt/driver.js';
import type { ResolvedInstance } from './instance-resolver.js';
import { InstanceRecorder } from './recorder.js';
import { ComputeLogger, ComputeSettings, ComputeStores, type ComputeSettingsShape, type ComputeStoresShape } from './tokens.js';

@injectable()
export class ComputeForensics {
  private readonly log: Logger;

  constructor(
    @inject(ComputeDriver) private readonly driver: ComputeDriver,
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
    @inject(InstanceRecorder) private readonly recorder: InstanceRecorder,
    @inject(ComputeLogger) logger: Logger,
  ) {
    this.log = logger.child({ component: 'forensics' });
  }

  /**
   * novamon: the guest's screen as PNG. Audited as the QMP `screendump` it runs (a durable row before
   * QEMU sees the command); authorisation is the caller's (novamon-api's policy), as for consoles.
   */
  async screenshot(ctx: RequestContext, instance: ResolvedInstance): Promise<Screenshot> {
    const screendump = { kind: 'qmp' as const, command: 'screendump', arguments: null, refusal: null };
    const shot = await this.recorder.withFault(ctx, instance, () => this.recorder.audited(ctx, instance, screendump, () => this.driver.screenshot(instance)));
    this.log.info({ instance_uuid: instance.uuid, request_id: ctx.requestId, user_id: ctx.userId, width: shot.width, height: shot.height, bytes: shot.png.length }, 'screenshot');
    return shot;
  }

  /**
   * Nova: trigger_crash_dump. The API recorded the `trigger_crash_dump` action; this adds the
   * `compute_trigger_crash_dump` event (Error with the traceback on failure) and a fault on failure.
   */
  async triggerCrashDump(ctx: RequestContext, instance: ResolvedInstance): Promise<void> {
    // Nova's decorators here are wrap_exception, wrap_instance_event and wrap_instance_fault: task_state is not reverted.
    await this.recorder.withEvent(
      ctx,
      instance,
      'trigger_crash_dump',
      'trigger_crash_dump',
      async () => {
        await this.driver.triggerCrashDump(instance);
        this.log.info({ instance_uuid: instance.uuid, request_id: ctx.requestId }, 'NMI injected (trigger_crash_dump)');
      },
      { revertsTaskState: false },
    );
  }
}
