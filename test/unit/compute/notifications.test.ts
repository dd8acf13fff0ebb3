import { describe, expect, test } from 'vitest';
import { adminContext, type RequestContext } from '../../../src/context.js';
import { InstanceNotRunning } from '../../../src/exception.js';
import { silentLogger } from '../../../src/logging.js';
import { exceptionPayload, instanceActionPayload, VersionedComputeNotifier, type ComputeNotification } from '../../../src/compute/notifications.js';

const ctx: RequestContext = { userId: 'u1', projectId: 'p1', isAdmin: true, roles: ['admin'], requestId: 'req-abc', globalRequestId: null, raw: {} };

// An Instance primitive's data as nova-conductor returns it (datetimes already in oslo's primitive form).
const instance = {
  uuid: '0f5c6a7e-8e8a-4b7a-9d2c-2d8a1f9d0001',
  id: 10,
  user_id: 'u1',
  project_id: 'p1',
  display_name: 'vm1',
  display_description: 'vm1',
  hostname: 'vm1',
  host: 'h1',
  node: 'h1',
  vm_state: 'active',
  task_state: 'powering-off',
  power_state: 1,
  image_ref: '',
  reservation_id: 'r-1',
  os_type: null,
  architecture: null,
  availability_zone: null,
  key_name: null,
  kernel_id: '',
  ramdisk_id: '',
  progress: 0,
  created_at: '2026-12-01T23:57:42Z',
  launched_at: '2026-12-01T23:57:42Z',
  updated_at: null,
  terminated_at: null,
  deleted_at: null,
  metadata: {},
  system_metadata: { image_min_disk: '1' },
  locked: false,
  auto_disk_config: false,
  flavor: {
    'nova_object.name': 'Flavor',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.2',
    'nova_object.data': { id: 1, name: 'm1', memory_mb: 64, vcpus: 1, root_gb: 0, ephemeral_gb: 0, flavorid: 'f1', swap: 0, rxtx_factor: 1.0, vcpu_weight: null, disabled: false, is_public: true, extra_specs: {}, description: null },
  },
  info_cache: {
    'nova_object.name': 'InstanceInfoCache',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.5',
    'nova_object.data': {
      instance_uuid: '0f5c6a7e-8e8a-4b7a-9d2c-2d8a1f9d0001',
      network_info: JSON.stringify([
        { id: 'port-1', address: 'fa:16:3e:00:00:01', devname: 'tap1', meta: {}, network: { label: 'private', subnets: [{ ips: [{ address: '10.0.0.5', version: 4, type: 'fixed' }] }] } },
      ]),
    },
  },
};

describe('InstanceActionPayload', () => {
  test('has Nova 1.8 fields in Nova\'s order, from the instance as the conductor holds it', () => {
    const p = instanceActionPayload(instance, ctx, null);
    expect(p['nova_object.name']).toBe('InstanceActionPayload');
    expect(p['nova_object.version']).toBe('1.8');
    // The field order Nova's own payload serialises in (captured from python3-nova 26.2.2).
    expect(Object.keys(p['nova_object.data'])).toEqual([
      'fault', 'request_id', 'uuid', 'user_id', 'tenant_id', 'reservation_id', 'display_name', 'display_description', 'host_name', 'host', 'node',
      'os_type', 'architecture', 'availability_zone', 'flavor', 'image_uuid', 'key_name', 'kernel_id', 'ramdisk_id', 'created_at', 'launched_at',
      'terminated_at', 'deleted_at', 'updated_at', 'state', 'power_state', 'task_state', 'progress', 'ip_addresses', 'block_devices', 'metadata',
      'locked', 'auto_disk_config', 'action_initiator_user', 'action_initiator_project', 'locked_reason',
    ]);
    expect(p['nova_object.data']).toMatchObject({
      fault: null,
      request_id: 'req-abc',
      tenant_id: 'p1',
      host_name: 'vm1',
      state: 'active',
      power_state: 'running',
      task_state: 'powering-off',
      auto_disk_config: 'MANUAL',
      block_devices: null,
      action_initiator_user: 'u1',
      action_initiator_project: 'p1',
      locked_reason: null,
    });
    expect(p['nova_object.data']['flavor']).toEqual({
      'nova_object.name': 'FlavorPayload',
      'nova_object.namespace': 'nova',
      'nova_object.version': '1.4',
      'nova_object.data': { flavorid: 'f1', memory_mb: 64, vcpus: 1, root_gb: 0, ephemeral_gb: 0, name: 'm1', swap: 0, rxtx_factor: 1.0, vcpu_weight: null, disabled: false, is_public: true, extra_specs: {}, projects: null, description: null },
    });
    expect(p['nova_object.data']['ip_addresses']).toEqual([
      { 'nova_object.name': 'IpPayload', 'nova_object.namespace': 'nova', 'nova_object.version': '1.0', 'nova_object.data': { label: 'private', mac: 'fa:16:3e:00:00:01', meta: {}, port_uuid: 'port-1', version: 4, address: '10.0.0.5', device_name: 'tap1' } },
    ]);
  });

  test('leaves out the request id of a context without user and project (periodic work), as Nova does', () => {
    const p = instanceActionPayload({ ...instance, power_state: 4 }, adminContext('req-sync'), null);
    expect(p['nova_object.data']).toMatchObject({ request_id: null, power_state: 'shutdown', action_initiator_user: null });
  });

  test('knows nothing it was not told: a bare record gives nulls, not invented values', () => {
    const p = instanceActionPayload({ uuid: 'u', host: 'h1', vm_state: 'stopped', power_state: 4 }, ctx, null);
    expect(p['nova_object.data']).toMatchObject({ uuid: 'u', host: 'h1', state: 'stopped', power_state: 'shutdown', flavor: null, ip_addresses: null, display_name: null, locked: null, metadata: null, auto_disk_config: null });
  });
});

describe('ExceptionPayload', () => {
  test('keeps a Nova exception\'s class and message', () => {
    const p = exceptionPayload(new InstanceNotRunning('i-1'), 'reboot_instance');
    expect(p['nova_object.data']).toMatchObject({ module_name: 'nova.exception', function_name: 'reboot_instance', exception: 'InstanceNotRunning' });
    expect(String(p['nova_object.data']['exception_message'])).toContain('i-1');
  });

  test('does not reveal the message of an unexpected error', () => {
    const p = exceptionPayload(new Error('password=hunter2 at /secret/path'), 'stop_instance');
    expect(JSON.stringify(p)).not.toContain('hunter2');
    expect(JSON.stringify(p)).not.toContain('/secret/path');
  });
});

describe('VersionedComputeNotifier', () => {
  test('sends instance.<action>.<phase> from nova-compute:<host>, ERROR with the fault on error', () => {
    const sent: ComputeNotification[] = [];
    const n = new VersionedComputeNotifier({ notify: (_c, x) => sent.push(x) }, () => instance, 'h1', silentLogger());
    n.instanceAction(ctx, { uuid: instance.uuid, name: 'instance-0000000a' }, 'power_off', 'start');
    n.instanceAction(ctx, { uuid: instance.uuid, name: 'instance-0000000a' }, 'reboot', 'error', new InstanceNotRunning('x'));
    n.exception(ctx, { uuid: instance.uuid, name: 'instance-0000000a' }, 'reboot_instance', new InstanceNotRunning('x'));
    expect(sent.map((s) => [s.publisherId, s.eventType, s.priority])).toEqual([
      ['nova-compute:h1', 'instance.power_off.start', 'INFO'],
      ['nova-compute:h1', 'instance.reboot.error', 'ERROR'],
      ['nova-compute:h1', 'compute.exception', 'ERROR'],
    ]);
    expect(sent[1]?.payload['nova_object.data']['fault']).toMatchObject({ 'nova_object.name': 'ExceptionPayload' });
    expect(sent[2]?.payload['nova_object.name']).toBe('ExceptionPayload');
  });

  test('never throws into the caller, whatever the store or the sink does', () => {
    const n = new VersionedComputeNotifier({ notify: () => { throw new Error('sink down'); } }, () => { throw new Error('store down'); }, 'h1', silentLogger());
    expect(() => n.instanceAction(ctx, { uuid: 'u', name: 'n' }, 'pause', 'start')).not.toThrow();
    expect(() => n.exception(ctx, { uuid: 'u', name: 'n' }, 'pause_instance', new Error('x'))).not.toThrow();
  });
});
