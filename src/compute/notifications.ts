// The versioned notifications nova-compute emits around its power operations
// (nova/compute/utils.py notify_about_instance_action, nova/exception_wrapper.py): publisher
// `nova-compute:<host>`, event `instance.<action>.<start|end|error>` with an InstanceActionPayload 1.8
// built from the instance as the store holds it, and `compute.exception` with an ExceptionPayload 1.1
// when an operation fails. Fields the store does not know are null, never made up. How the
// notification travels (oslo envelope, topics) is the sink's business.

import type { RequestContext } from '../context.js';
import { NovaException } from '../exception.js';
import type { Logger } from '../logging.js';

export type InstanceActionName = 'power_off' | 'power_on' | 'pause' | 'unpause' | 'reboot';
export type InstanceActionPhase = 'start' | 'end' | 'error';

export interface ComputeNotification {
  publisherId: string;
  eventType: string;
  priority: 'INFO' | 'ERROR';
  payload: NotificationObject;
}

/** Where built notifications go: the versioned topics (the wire is the sink's concern). */
export interface NotificationSink {
  notify(ctx: RequestContext, n: ComputeNotification): void;
}

/** The instance fields the store holds (an Instance primitive's data), or null when it holds none. */
export type InstanceDetailsSource = (uuid: string) => Record<string, unknown> | null;

export interface NotificationObject {
  'nova_object.name': string;
  'nova_object.namespace': 'nova';
  'nova_object.version': string;
  'nova_object.data': Record<string, unknown>;
}

function notificationObject(name: string, version: string, data: Record<string, unknown>): NotificationObject {
  return { 'nova_object.name': name, 'nova_object.namespace': 'nova', 'nova_object.version': version, 'nova_object.data': data };
}

// nova.objects.fields.InstancePowerState: the integer power states as the payload's strings.
const POWER_STATE_NAMES: Record<number, string> = { 0: 'pending', 1: 'running', 3: 'paused', 4: 'shutdown', 6: 'crashed', 7: 'suspended' };

function field(d: Record<string, unknown>, key: string): unknown {
  return d[key] === undefined ? null : d[key];
}

/** A NovaObject primitive's data (`nova_object.data`), or null. */
function objectData(v: unknown): Record<string, unknown> | null {
  if (v === null || typeof v !== 'object') return null;
  const data = (v as Record<string, unknown>)['nova_object.data'];
  return data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : null;
}

const FLAVOR_FIELDS = ['flavorid', 'memory_mb', 'vcpus', 'root_gb', 'ephemeral_gb', 'name', 'swap', 'rxtx_factor', 'vcpu_weight', 'disabled', 'is_public', 'extra_specs', 'projects', 'description'];

/** FlavorPayload 1.4 from the instance's Flavor; fields the Flavor does not carry are null, as Nova leaves them. */
export function flavorPayload(flavor: unknown): NotificationObject | null {
  const d = objectData(flavor);
  if (!d) return null;
  return notificationObject('FlavorPayload', '1.4', Object.fromEntries(FLAVOR_FIELDS.map((k) => [k, field(d, k)])));
}

/** IpPayload 1.0 for every fixed IP of the info cache's network_info (a JSON string in the primitive). */
export function ipPayloads(infoCache: unknown): NotificationObject[] | null {
  const d = objectData(infoCache);
  if (!d) return null;
  let nw: unknown = d['network_info'];
  if (typeof nw === 'string') {
    try {
      nw = JSON.parse(nw);
    } catch {
      return null;
    }
  }
  if (!Array.isArray(nw)) return null;
  const out: NotificationObject[] = [];
  for (const vif of nw as Record<string, unknown>[]) {
    const network = (vif['network'] ?? {}) as Record<string, unknown>;
    const subnets = Array.isArray(network['subnets']) ? (network['subnets'] as Record<string, unknown>[]) : [];
    for (const subnet of subnets) {
      const ips = Array.isArray(subnet['ips']) ? (subnet['ips'] as Record<string, unknown>[]) : [];
      for (const ip of ips) {
        out.push(
          notificationObject('IpPayload', '1.0', {
            label: field(network, 'label'),
            mac: field(vif, 'address'),
            meta: vif['meta'] ?? {},
            port_uuid: field(vif, 'id'),
            version: field(ip, 'version'),
            address: field(ip, 'address'),
            device_name: field(vif, 'devname'),
          }),
        );
      }
    }
  }
  return out;
}

/** ExceptionPayload 1.1. Nova's own exceptions keep their class and message; others only their name. */
export function exceptionPayload(err: unknown, functionName: string): NotificationObject {
  const nova = err instanceof NovaException;
  const remote = !nova && err instanceof Error && typeof (err as { module?: unknown }).module === 'string' ? (err as Error & { module: string }) : null;
  const exception = err instanceof Error ? err.name : 'Error';
  const message = nova || remote ? (err as Error).message : 'An unknown exception occurred.';
  return notificationObject('ExceptionPayload', '1.1', {
    module_name: nova ? err.module : remote ? remote.module : 'novamon',
    function_name: functionName,
    exception,
    exception_message: message,
    // Frames of our process are no business of a notification consumer (nor are host paths).
    traceback: `Traceback (most recent call last):\n,  (frames omitted)\n,${exception}: ${message}\n`,
  });
}

/** InstanceActionPayload 1.8 as nova/notifications/objects/instance.py fills it. */
export function instanceActionPayload(d: Record<string, unknown>, ctx: RequestContext, fault: NotificationObject | null): NotificationObject {
  const sys = d['system_metadata'] !== null && typeof d['system_metadata'] === 'object' ? (d['system_metadata'] as Record<string, unknown>) : null;
  const power = typeof d['power_state'] === 'number' ? (POWER_STATE_NAMES[d['power_state']] ?? null) : null;
  const autoDisk = typeof d['auto_disk_config'] === 'boolean' ? (d['auto_disk_config'] ? 'AUTO' : 'MANUAL') : null;
  return notificationObject('InstanceActionPayload', '1.8', {
    fault,
    // Nova leaves the request id out for periodic tasks, whose context has no user and project.
    request_id: ctx.projectId && ctx.userId ? ctx.requestId : null,
    uuid: field(d, 'uuid'),
    user_id: field(d, 'user_id'),
    tenant_id: field(d, 'project_id'),
    reservation_id: field(d, 'reservation_id'),
    display_name: field(d, 'display_name'),
    display_description: field(d, 'display_description'),
    host_name: field(d, 'hostname'),
    host: field(d, 'host'),
    node: field(d, 'node'),
    os_type: field(d, 'os_type'),
    architecture: field(d, 'architecture'),
    availability_zone: field(d, 'availability_zone'),
    flavor: flavorPayload(d['flavor']),
    image_uuid: field(d, 'image_ref'),
    key_name: field(d, 'key_name'),
    kernel_id: field(d, 'kernel_id'),
    ramdisk_id: field(d, 'ramdisk_id'),
    created_at: field(d, 'created_at'),
    launched_at: field(d, 'launched_at'),
    terminated_at: field(d, 'terminated_at'),
    deleted_at: field(d, 'deleted_at'),
    updated_at: field(d, 'updated_at'),
    state: field(d, 'vm_state'),
    power_state: power,
    task_state: field(d, 'task_state'),
    progress: field(d, 'progress'),
    ip_addresses: ipPayloads(d['info_cache']),
    // bdms_in_notifications is off by default in Nova, and novamon has no block device mappings.
    block_devices: null,
    metadata: field(d, 'metadata'),
    locked: field(d, 'locked'),
    auto_disk_config: autoDisk,
    action_initiator_user: ctx.userId,
    action_initiator_project: ctx.projectId,
    locked_reason: sys && typeof sys['locked_reason'] === 'string' ? sys['locked_reason'] : null,
  });
}

/** The compute notifier: what the manager calls where Nova's manager notifies. Never throws. */
export class VersionedComputeNotifier {
  constructor(
    private readonly sink: NotificationSink,
    private readonly details: InstanceDetailsSource,
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  instanceAction(ctx: RequestContext, instance: { uuid: string; name: string }, action: InstanceActionName, phase: InstanceActionPhase, error?: unknown): void {
    try {
      const d = this.details(instance.uuid) ?? { uuid: instance.uuid };
      const fault = phase === 'error' || error !== undefined ? exceptionPayload(error, `${action === 'power_off' ? 'stop' : action === 'power_on' ? 'start' : action}_instance`) : null;
      this.sink.notify(ctx, {
        publisherId: `nova-compute:${this.host}`,
        eventType: `instance.${action}.${phase}`,
        priority: fault ? 'ERROR' : 'INFO',
        payload: instanceActionPayload(d, ctx, fault),
      });
    } catch (err) {
      this.log.error({ err: String(err), instance_uuid: instance.uuid, action, phase }, 'could not build the notification');
    }
  }

  exception(ctx: RequestContext, instance: { uuid: string; name: string }, method: string, error: unknown): void {
    try {
      this.sink.notify(ctx, {
        publisherId: `nova-compute:${this.host}`,
        eventType: 'compute.exception',
        priority: 'ERROR',
        payload: exceptionPayload(error, method),
      });
    } catch (err) {
      this.log.error({ err: String(err), instance_uuid: instance.uuid, method }, 'could not build the exception notification');
    }
  }
}
