// What novamon-compute sends nova-conductor for each operation (Nova's manager sequence), on the fake
// driver and an in-process conductor stand-in. The real conductor is in test/functional.
import 'reflect-metadata';
import { Container } from 'inversify';
import { describe, expect, it } from 'vitest';
import { ComputeManager } from '../../../src/compute/manager.js';
import { InstanceResolver } from '../../../src/compute/instance-resolver.js';
import { InstanceRecorder } from '../../../src/compute/recorder.js';
import { MonitorPolicy } from '../../../src/compute/monitor-policy.js';
import { PowerStateSync } from '../../../src/compute/lifecycle.js';
import { ComputeLogger, ComputeNotifier, ComputeSettings, ComputeStores, noNotifications } from '../../../src/compute/tokens.js';
import { ConductorClient } from '../../../src/conductor/client.js';
import { conductorStores } from '../../../src/conductor/stores.js';
import { InternalError } from '../../../src/exception.js';
import { silentLogger } from '../../../src/logging.js';
import { ComputeDriver } from '../../../src/virt/driver.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { InstanceNameTemplate } from '../../../src/virt/instance-name.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { ctx, NAME_A, settings, UUID_A } from '../compute/harness.js';
import { memoryStores } from '../compute/memory-stores.js';
import { FakeConductor } from './fake-conductor.js';

function build() {
  const conductor = new FakeConductor();
  const local = memoryStores();
  const stores = conductorStores({
    conductor: new ConductorClient(conductor, silentLogger()),
    nameTemplate: new InstanceNameTemplate('instance-%08x'),
    logger: silentLogger(),
    local,
  });
  const driver = new FakeDriver();
  const c = new Container();
  c.bind(ComputeDriver).toConstantValue(driver);
  c.bind(ComputeSettings).toConstantValue(settings());
  c.bind(ComputeStores).toConstantValue(stores);
  c.bind(ComputeLogger).toConstantValue(silentLogger());
  c.bind(ComputeNotifier).toConstantValue(noNotifications);
  c.bind(ComputeManager).toSelf().inSingletonScope();
  c.bind(InstanceResolver).toSelf().inSingletonScope();
  c.bind(InstanceRecorder).toSelf().inSingletonScope();
  c.bind(MonitorPolicy).toSelf().inSingletonScope();
  c.bind(PowerStateSync).toSelf().inSingletonScope();
  return { conductor, driver, manager: c.get(ComputeManager), sync: c.get(PowerStateSync) };
}

const primitive = (data: Record<string, unknown>) => ({
  'nova_object.name': 'Instance',
  'nova_object.namespace': 'nova',
  'nova_object.version': '2.7',
  'nova_object.data': { uuid: UUID_A, id: 10, host: 'host1', vm_state: 'active', power_state: 1, ...data },
});

async function withInstance(taskState: string | null, vmState = 'active') {
  const h = build();
  h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
  h.conductor.addInstance({ uuid: UUID_A, id: 10, host: 'host1', vm_state: vmState, task_state: taskState, power_state: 1 });
  const inst = await h.manager.resolve({ uuid: UUID_A, id: 10, primitive: primitive({ task_state: taskState, vm_state: vmState, flavor: { 'nova_object.name': 'Flavor', 'nova_object.namespace': 'nova', 'nova_object.version': '1.2', 'nova_object.data': { memory_mb: 64 }, 'nova_object.changes': ['memory_mb'] } }) });
  return { ...h, inst };
}

const saves = (c: FakeConductor) =>
  c.calls
    .filter((x) => x.method === 'object_action' && (x.args['objinst'] as Record<string, unknown>)['nova_object.name'] === 'Instance')
    .map((x) => {
      const o = x.args['objinst'] as Record<string, unknown>;
      const d = o['nova_object.data'] as Record<string, unknown>;
      const changes = (o['nova_object.changes'] as string[]).slice().sort();
      return { changes, values: Object.fromEntries(changes.map((k) => [k, d[k]])), kwargs: x.args['kwargs'] };
    });

describe('power operations through nova-conductor', () => {
  it('stop: event_start under the caller request id, one save with expected powering-off, event Success', async () => {
    const h = await withInstance('powering-off');
    await h.manager.stopInstance(ctx({ requestId: 'req-abc' }), h.inst, false);
    expect(saves(h.conductor)).toEqual([
      { changes: ['power_state', 'task_state', 'vm_state'], values: { power_state: PowerState.SHUTDOWN, task_state: null, vm_state: 'stopped' }, kwargs: { expected_task_state: ['powering-off'] } },
    ]);
    expect(h.conductor.events).toEqual([{ uuid: UUID_A, event: 'compute_stop_instance', requestId: 'req-abc', host: 'host1', result: 'Success', excVal: null, excTb: null }]);
    // The caller's nested objects are sent back with no changes of their own (nothing else is written).
    const sent = h.conductor.calls.find((x) => x.method === 'object_action')?.args['objinst'] as Record<string, unknown>;
    expect((sent['nova_object.data'] as Record<string, unknown>)['flavor']).not.toHaveProperty('nova_object.changes');
    expect(h.conductor.instances.get(UUID_A)).toMatchObject({ vm_state: 'stopped', task_state: null, power_state: 4 });
  });

  it('reboot HARD: reboot_pending_hard, then reboot_started_hard, then ACTIVE with task_state None', async () => {
    const h = await withInstance('rebooting_hard');
    await h.manager.rebootInstance(ctx(), h.inst, 'HARD');
    expect(saves(h.conductor).map((s) => [s.values, s.kwargs])).toEqual([
      [{ power_state: 1, task_state: 'reboot_pending_hard' }, { expected_task_state: ['rebooting_hard', 'reboot_pending_hard', 'reboot_started_hard'] }],
      [{ task_state: 'reboot_started_hard' }, { expected_task_state: 'reboot_pending_hard' }],
      [{ power_state: 1, task_state: null, vm_state: 'active' }, {}],
    ]);
  });

  it('UnexpectedTaskStateError: a fault and an Error event, task_state left to the task that pre-empted', async () => {
    const h = await withInstance(null); // the API never set pausing: someone else owns the instance
    h.conductor.instances.get(UUID_A)!['task_state'] = 'deleting';
    await expect(h.manager.pauseInstance(ctx(), h.inst)).rejects.toMatchObject({ className: 'UnexpectedTaskStateError' });
    expect(saves(h.conductor)).toHaveLength(1); // no revert to None
    expect(h.conductor.faults).toHaveLength(1);
    expect(h.conductor.faults[0]).toMatchObject({ instance_uuid: UUID_A, code: 500, host: 'host1' });
    expect(h.conductor.events[0]).toMatchObject({ event: 'compute_pause_instance', result: 'Error' });
    expect(String(h.conductor.events[0]?.excTb)).toContain('UnexpectedTaskStateError');
    expect(h.conductor.instances.get(UUID_A)?.['task_state']).toBe('deleting');
  });

  it('a driver failure: fault, Error event, then task_state reverted to None without expectation', async () => {
    const h = await withInstance('unpausing', 'paused');
    h.driver.injectFault(NAME_A, 'unpause', new InternalError('the monitor refused'));
    await expect(h.manager.unpauseInstance(ctx(), h.inst)).rejects.toBeInstanceOf(InternalError);
    const s = saves(h.conductor);
    expect(s.at(-1)).toEqual({ changes: ['task_state'], values: { task_state: null }, kwargs: {} });
    expect(h.conductor.events[0]).toMatchObject({ result: 'Error', excVal: 'the monitor refused' });
    expect(h.conductor.faults[0]).toMatchObject({ code: 500, message: 'the monitor refused' });
    expect(h.conductor.instances.get(UUID_A)).toMatchObject({ task_state: null, vm_state: 'paused' });
  });

  it('console: the conductor makes the token (ConsoleAuthToken.authorize with token_ttl)', async () => {
    const h = await withInstance(null);
    const info = await h.manager.getVncConsole(ctx(), h.inst, 'novnc');
    expect(info.token).toBe('tok-from-conductor');
    expect(info.accessUrl).toBe('http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3Dtok-from-conductor');
    const call = h.conductor.calls.find((x) => x.method === 'object_action');
    expect(call?.args).toMatchObject({ objmethod: 'authorize', args: [600] });
    expect((call?.args['objinst'] as Record<string, unknown>)['nova_object.changes']).toEqual(
      expect.arrayContaining(['console_type', 'host', 'port', 'internal_access_path', 'instance_uuid', 'access_url_base']),
    );
  });
});

describe('a guest that stops by itself', () => {
  it('is stopped as Nova does: power_state, powering-off from None, a stop action, stop_instance', async () => {
    const h = build();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    h.conductor.addInstance({ uuid: UUID_A, id: 10, host: 'host1', vm_state: 'active', task_state: null, power_state: 1 });
    await h.sync.start();
    h.driver.guestShutdown(NAME_A);
    await h.sync.close();
    expect(saves(h.conductor).map((s) => [s.values, s.kwargs])).toEqual([
      [{ power_state: 4 }, {}],
      [{ progress: 0, task_state: 'powering-off' }, { expected_task_state: [null] }],
      [{ power_state: 4, task_state: null, vm_state: 'stopped' }, { expected_task_state: ['powering-off', null] }],
    ]);
    expect(h.conductor.actions).toHaveLength(1);
    expect(h.conductor.actions[0]).toMatchObject({ uuid: UUID_A, action: 'stop' });
    expect(h.conductor.events[0]).toMatchObject({ event: 'compute_stop_instance', result: 'Success', requestId: h.conductor.actions[0]?.requestId });
    expect(h.conductor.faults).toHaveLength(0); // guest-shutdown is the guest's own choice
  });

  it.each([
    ['killProcess', 'SHUTDOWN/disconnect'],
    ['guestPanic', 'GUEST_PANICKED'],
  ] as const)('after %s, QEMU\'s reason is kept as an instance fault and the instance is stopped', async (how, reason) => {
    const h = build();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    h.conductor.addInstance({ uuid: UUID_A, id: 10, host: 'host1', vm_state: 'active', task_state: null, power_state: 1 });
    await h.sync.start();
    h.driver[how](NAME_A);
    await h.sync.close();
    expect(h.conductor.faults).toEqual([expect.objectContaining({ instance_uuid: UUID_A, code: 500, host: 'host1', message: `Instance ${UUID_A} stopped by itself: QEMU reported ${reason}` })]);
    expect(h.conductor.instances.get(UUID_A)).toMatchObject({ vm_state: 'stopped', task_state: null });
    expect(h.conductor.actions.map((a) => a.action)).toEqual(['stop']);
  });

  it('leaves an instance alone when another host owns it now', async () => {
    const h = build();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    h.conductor.addInstance({ uuid: UUID_A, id: 10, host: 'host2', vm_state: 'active', task_state: null, power_state: 1 });
    await h.sync.start();
    h.driver.guestShutdown(NAME_A);
    await h.sync.close();
    expect(saves(h.conductor)).toHaveLength(0);
  });

  it('does not touch a guest Nova has no instance for', async () => {
    const h = build();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    await h.sync.start();
    await h.sync.close();
    expect(saves(h.conductor)).toHaveLength(0);
  });
});
