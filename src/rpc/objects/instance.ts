// The Instance argument of compute RPC methods (Nova's Instance object 2.x), validated once at the
// edge into the fields a compute service uses. Every field is optional on the wire; a uuid or an id
// is required here because every method addresses a guest by one of them.

import { z } from 'zod';
import { primitiveData, ObjectFormatError, toPrimitive } from './primitive.js';

const uuidLike = z.string().regex(/^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/, 'must be a uuid');
const shortString = z.string().max(255);

const instanceData = z.object({
  uuid: uuidLike.optional(),
  id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  host: shortString.nullable().optional(),
  node: shortString.nullable().optional(),
  vm_state: shortString.nullable().optional(),
  task_state: shortString.nullable().optional(),
  power_state: z.number().int().min(0).max(255).nullable().optional(),
  display_name: shortString.nullable().optional(),
  hostname: shortString.nullable().optional(),
  project_id: shortString.nullable().optional(),
  user_id: shortString.nullable().optional(),
  launched_at: z.string().max(64).nullable().optional(),
}).refine((d) => d.uuid !== undefined || d.id !== undefined, { message: 'needs a uuid or an id', path: ['uuid'] });

/** What novamon uses of an Instance argument. */
export interface InstanceArg {
  /** Absent only when the caller addressed the guest by id alone (novamon-manage rpc call NAME). */
  uuid: string | undefined;
  id: number | undefined;
  host: string | null | undefined;
  node: string | null | undefined;
  vmState: string | null | undefined;
  taskState: string | null | undefined;
  powerState: number | null | undefined;
  displayName: string | null | undefined;
  projectId: string | null | undefined;
  userId: string | null | undefined;
  launchedAt: string | null | undefined;
  /** The argument as received, for a store that writes back through Nova's conductor. */
  primitive: unknown;
}

export const INSTANCE_OBJECT_VERSION = '2.7';

export function parseInstanceArg(value: unknown): InstanceArg {
  const data = primitiveData(value, 'Instance', 2);
  const result = instanceData.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ObjectFormatError(`Instance.${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  const d = result.data;
  return {
    uuid: d.uuid?.toLowerCase(),
    id: d.id,
    host: d.host,
    node: d.node,
    vmState: d.vm_state,
    taskState: d.task_state,
    powerState: d.power_state,
    displayName: d.display_name,
    projectId: d.project_id,
    userId: d.user_id,
    launchedAt: d.launched_at,
    primitive: value,
  };
}

/** An Instance primitive as a Nova controller sends it, for our own RPC client. */
export function instancePrimitive(fields: {
  uuid?: string;
  id?: number;
  host: string | null;
  node?: string | null;
  vmState?: string | null;
  taskState?: string | null;
  powerState?: number | null;
  displayName?: string | null;
  projectId?: string | null;
  userId?: string | null;
}): ReturnType<typeof toPrimitive> {
  const data: Record<string, unknown> = { host: fields.host };
  if (fields.uuid !== undefined) data['uuid'] = fields.uuid;
  if (fields.id !== undefined) data['id'] = fields.id;
  if (fields.node !== undefined) data['node'] = fields.node;
  if (fields.vmState !== undefined) data['vm_state'] = fields.vmState;
  if (fields.taskState !== undefined) data['task_state'] = fields.taskState;
  if (fields.powerState !== undefined) data['power_state'] = fields.powerState;
  if (fields.displayName !== undefined) data['display_name'] = fields.displayName;
  if (fields.projectId !== undefined) data['project_id'] = fields.projectId;
  if (fields.userId !== undefined) data['user_id'] = fields.userId;
  return toPrimitive('Instance', INSTANCE_OBJECT_VERSION, data);
}
