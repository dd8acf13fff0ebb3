// An in-process stand-in for nova-conductor's object methods, for unit tests of what novamon sends:
// it answers the calls the compute host makes with Nova's semantics (expected_task_state, the
// [updates, result] reply, InstanceNotFound) and keeps every call for the test to read.
// The functional tests run the same paths against Nova's real conductor.
import type { RequestContext } from '../../../src/context.js';
import { RemoteError } from '../../../src/rpc/failure.js';
import type { RpcTarget } from '../../../src/rpc/client.js';

export interface SentCall {
  method: string;
  args: Record<string, unknown>;
  ctx: Partial<RequestContext>;
  target: RpcTarget;
}

type Row = Record<string, unknown>;

function novaError(cls: string, message: string, kwargs: Record<string, unknown>): RemoteError {
  return new RemoteError(cls, 'nova.exception', message, kwargs, [message]);
}

export class FakeConductor {
  readonly calls: SentCall[] = [];
  readonly instances = new Map<string, Row>();
  readonly events: { uuid: string; event: string; requestId: string | null; result?: string; excVal?: unknown; excTb?: unknown; host?: unknown }[] = [];
  readonly actions: { uuid: string; action: string; requestId: string | null }[] = [];
  readonly faults: Row[] = [];
  services: Row[] = [];
  /** When set, the next call with this method fails with MessagingTimeout-like silence (the test's choice of error). */
  failNext: { method: string; error: Error } | null = null;

  addInstance(row: Row): void {
    this.instances.set(row['uuid'] as string, { ...row });
  }

  async call(target: RpcTarget, ctx: Partial<RequestContext>, method: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push({ method, args: structuredClone(args), ctx, target });
    if (this.failNext && this.failNext.method === method) {
      const e = this.failNext.error;
      this.failNext = null;
      throw e;
    }
    if (method === 'ping') return { service: 'conductor', arg: args['arg'] };
    if (method === 'object_class_action_versions') return this.classAction(ctx, args);
    if (method === 'object_action') return this.objectAction(args);
    throw new Error(`unexpected method ${method}`);
  }

  private instancePrimitive(row: Row) {
    return { 'nova_object.name': 'Instance', 'nova_object.namespace': 'nova', 'nova_object.version': '2.7', 'nova_object.data': { ...row } };
  }

  private classAction(ctx: Partial<RequestContext>, a: Record<string, unknown>): unknown {
    const key = `${a['objname'] as string}.${a['objmethod'] as string}`;
    const args = a['args'] as unknown[];
    const kwargs = a['kwargs'] as Record<string, unknown>;
    switch (key) {
      case 'Instance.get_by_uuid': {
        const row = this.instances.get(args[0] as string);
        if (!row) throw novaError('InstanceNotFound', `Instance ${String(args[0])} could not be found.`, { instance_id: args[0], code: 404 });
        return this.instancePrimitive(row);
      }
      case 'Instance.get_by_id': {
        const row = [...this.instances.values()].find((r) => r['id'] === args[0]);
        if (!row) throw novaError('InstanceNotFound', `Instance ${String(args[0])} could not be found.`, { instance_id: args[0], code: 404 });
        return this.instancePrimitive(row);
      }
      case 'InstanceList.get_by_host':
        return {
          'nova_object.name': 'InstanceList', 'nova_object.namespace': 'nova', 'nova_object.version': '2.6',
          'nova_object.data': { objects: [...this.instances.values()].filter((r) => r['host'] === args[0]).map((r) => this.instancePrimitive(r)) },
        };
      case 'InstanceActionEvent.event_start':
        this.events.push({ uuid: args[0] as string, event: args[1] as string, requestId: ctx.requestId ?? null, host: kwargs['host'] });
        return null;
      case 'InstanceActionEvent.event_finish_with_failure': {
        const ev = [...this.events].reverse().find((e) => e.uuid === args[0] && e.event === args[1] && e.result === undefined);
        if (!ev) throw novaError('InstanceActionEventNotFound', 'Event not found', { code: 404 });
        Object.assign(ev, { result: kwargs['exc_tb'] === null ? 'Success' : 'Error', excVal: kwargs['exc_val'], excTb: kwargs['exc_tb'] });
        return null;
      }
      case 'InstanceAction.action_start':
        this.actions.push({ uuid: args[0] as string, action: args[1] as string, requestId: ctx.requestId ?? null });
        return null;
      case 'Service.get_by_host_and_binary': {
        const s = this.services.find((r) => r['host'] === args[0] && r['binary'] === args[1]);
        return s ? { 'nova_object.name': 'Service', 'nova_object.namespace': 'nova', 'nova_object.version': '1.22', 'nova_object.data': { ...s } } : null;
      }
      default:
        throw new Error(`unexpected class action ${key}`);
    }
  }

  private objectAction(a: Record<string, unknown>): unknown {
    const inst = a['objinst'] as Record<string, unknown>;
    const name = inst['nova_object.name'] as string;
    const data = inst['nova_object.data'] as Row;
    const changes = (inst['nova_object.changes'] as string[] | undefined) ?? [];
    const key = `${name}.${a['objmethod'] as string}`;
    const picked = Object.fromEntries(changes.map((c) => [c, data[c]]));
    switch (key) {
      case 'Instance.save': {
        const row = this.instances.get(data['uuid'] as string);
        if (!row) throw novaError('InstanceNotFound', 'gone', { instance_id: data['uuid'], code: 404 });
        const kw = a['kwargs'] as Record<string, unknown>;
        if ('expected_task_state' in kw) {
          const exp = kw['expected_task_state'];
          const allowed = Array.isArray(exp) ? exp : [exp];
          if (!allowed.includes(row['task_state'] ?? null)) {
            throw novaError('UnexpectedTaskStateError', `Conflict updating instance ${String(data['uuid'])}. Expected: {'task_state': ${JSON.stringify(exp)}}. Actual: {'task_state': ${String(row['task_state'])}}`, { instance_uuid: data['uuid'], code: 500 });
          }
        }
        Object.assign(row, picked, { updated_at: '2026-12-01T00:00:00Z' });
        return [{ ...picked, updated_at: row['updated_at'], obj_what_changed: [] }, null];
      }
      case 'InstanceFault.create':
        this.faults.push(picked);
        return [{ id: this.faults.length, created_at: '2026-12-01T00:00:00Z', obj_what_changed: [] }, null];
      case 'ConsoleAuthToken.authorize':
        return [{ id: 1, token: 'tok-from-conductor', token_hash: 'x', expires: 1, obj_what_changed: [] }, 'tok-from-conductor'];
      case 'Service.create': {
        const row = { ...picked, id: this.services.length + 1, uuid: 'svc-uuid', disabled: false, forced_down: false, last_seen_up: null };
        this.services.push(row);
        return [{ id: row.id, uuid: row.uuid, disabled: false, forced_down: false, last_seen_up: null, obj_what_changed: [] }, null];
      }
      case 'Service.save': {
        const row = this.services.find((r) => r['id'] === data['id']);
        if (!row) throw novaError('ServiceNotFound', 'Service could not be found.', { service_id: data['id'], code: 404 });
        Object.assign(row, picked);
        return [{ ...picked, last_seen_up: '2026-12-01T00:00:05Z', disabled: row['disabled'], obj_what_changed: [] }, null];
      }
      default:
        throw new Error(`unexpected object action ${key}`);
    }
  }
}
