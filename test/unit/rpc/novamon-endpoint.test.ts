import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { ComputeForensics } from '../../../src/compute/forensics.js';
import { InstanceRecorder } from '../../../src/compute/recorder.js';
import { noNotifications } from '../../../src/compute/tokens.js';
import { ConsoleNotAvailable, InstanceNotRunning, Invalid, PolicyNotAuthorized } from '../../../src/exception.js';
import { silentLogger } from '../../../src/logging.js';
import { RpcDispatcher } from '../../../src/rpc/dispatcher.js';
import { computeEndpoints, UnexpectedKeywordArgument } from '../../../src/rpc/endpoints/compute.js';
import { NovamonEndpoint } from '../../../src/rpc/endpoints/novamon.js';
import { instancePrimitive } from '../../../src/rpc/objects/instance.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { buildHarness, ctx, NAME_A, settings, UUID_A } from '../compute/harness.js';
import { decodePng } from '../../fixtures/png.js';

function setup() {
  const h = buildHarness();
  h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
  const recorder = new InstanceRecorder(settings(), h.stores, noNotifications, silentLogger());
  const forensics = new ComputeForensics(h.driver, settings(), h.stores, recorder, silentLogger());
  const dispatcher = new RpcDispatcher([...computeEndpoints(h.manager, forensics), new NovamonEndpoint(h.manager, forensics)]);
  return { h, dispatcher };
}

const instance = instancePrimitive({ uuid: UUID_A, id: 10, host: 'host1' });

describe('novamon RPC namespace', () => {
  it('serves get_screenshot in namespace novamon only, audited as a screendump', async () => {
    const { h, dispatcher } = setup();
    const reply = (await dispatcher.dispatch('get_screenshot', '1.0', 'novamon', ctx(), { instance })) as { mime_type: string; width: number; data: string };
    expect(reply.mime_type).toBe('image/png');
    expect(decodePng(Buffer.from(reply.data, 'base64')).width).toBe(reply.width);
    expect(h.stores.auditRows.map((r) => [r.command, r.kind, r.result])).toEqual([['screendump', 'qmp', 'ok']]);
    await expect(dispatcher.dispatch('get_screenshot', '6.0', null, ctx(), { instance })).rejects.toThrow(/does not support RPC method get_screenshot/);
  });

  it('records the failure of a screenshot in the audit trail and as a fault', async () => {
    const { h, dispatcher } = setup();
    h.driver.addInstance({ name: 'instance-0000000b', uuid: '22222222-2222-3333-4444-555555555555', vnc: null });
    const other = instancePrimitive({ uuid: '22222222-2222-3333-4444-555555555555', id: 11, host: 'host1' });
    await h.sync.discover();
    await expect(dispatcher.dispatch('get_screenshot', '1.0', 'novamon', ctx(), { instance: other })).rejects.toBeInstanceOf(ConsoleNotAvailable);
    expect(h.stores.auditRows.at(-1)?.result).toBe('error');
    expect(h.stores.faultRows.length).toBe(1);
  });
});

describe('list_instances', () => {
  it('answers an admin with the store\'s rows of this host, or of every host with all_hosts', async () => {
    const { h, dispatcher } = setup();
    const filters: Array<{ host?: string }> = [];
    h.stores.instances.listRows = async (filter) => {
      filters.push(filter);
      return [{ uuid: UUID_A, name: NAME_A, host: 'host1', createdAt: '2026-01-01T00:00:00.000Z' }];
    };
    expect(await dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx(), {})).toEqual([{ uuid: UUID_A, name: NAME_A, host: 'host1', createdAt: '2026-01-01T00:00:00.000Z' }]);
    await dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx(), { all_hosts: true });
    expect(filters).toEqual([{ host: 'host1' }, {}]);
  });

  it('falls back to this host\'s records for a store without rows of its own', async () => {
    const { h, dispatcher } = setup();
    await h.sync.discover();
    const rows = (await dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx(), { all_hosts: false })) as Array<{ uuid: string; name: string }>;
    expect(rows.map((r) => [r.uuid, r.name])).toEqual([[UUID_A, NAME_A]]);
  });

  it('refuses a non-admin context, a bad all_hosts and an unknown argument, as the compute namespace does', async () => {
    const { dispatcher } = setup();
    await expect(dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx({ isAdmin: false, roles: ['member'] }), {})).rejects.toBeInstanceOf(PolicyNotAuthorized);
    await expect(dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx(), { all_hosts: 'yes' })).rejects.toBeInstanceOf(Invalid);
    const err = await dispatcher.dispatch('list_instances', '1.0', 'novamon', ctx(), { all_hosts: true, host: 'h2' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnexpectedKeywordArgument);
    expect((err as Error).message).toBe("list_instances() got an unexpected keyword argument 'host'");
    await expect(dispatcher.dispatch('get_screenshot', '1.0', 'novamon', ctx(), { instance, scale: 2 })).rejects.toThrow(/get_screenshot\(\) got an unexpected keyword argument 'scale'/);
    await expect(dispatcher.dispatch('list_instances', '6.0', null, ctx(), {})).rejects.toThrow(/does not support RPC method list_instances/);
  });
});

describe('instance_actions, instance_faults, db_version (1.1)', () => {
  const records = {
    instanceActions: async (uuid: string) => [{ action: 'pause', instanceUuid: uuid }],
    instanceFaults: async (uuid: string) => [{ code: 500, instanceUuid: uuid }],
    schemaVersion: async () => ({ version: 9, latest: 9, applied: [], pending: [] }),
  };
  function withRecords(served: boolean) {
    const { h } = setup();
    const recorder = new InstanceRecorder(settings(), h.stores, noNotifications, silentLogger());
    const forensics = new ComputeForensics(h.driver, settings(), h.stores, recorder, silentLogger());
    return new RpcDispatcher([new NovamonEndpoint(h.manager, forensics, served ? records : undefined)]);
  }

  it('reads the instance\'s records for an admin, the instance resolved as any compute call resolves it', async () => {
    const d = withRecords(true);
    expect(await d.dispatch('instance_actions', '1.1', 'novamon', ctx(), { instance })).toEqual([{ action: 'pause', instanceUuid: UUID_A }]);
    expect(await d.dispatch('instance_faults', '1.1', 'novamon', ctx(), { instance })).toEqual([{ code: 500, instanceUuid: UUID_A }]);
    expect(await d.dispatch('db_version', '1.1', 'novamon', ctx(), {})).toMatchObject({ version: 9 });
    await expect(d.dispatch('instance_faults', '1.1', 'novamon', ctx(), { instance: instancePrimitive({ uuid: '00000000-0000-4000-8000-0000000000ff', host: 'host1' }) })).rejects.toThrow(/could not be found/);
  });

  it('refuses a non-admin context and unknown arguments, and is absent when the service keeps no records', async () => {
    const d = withRecords(true);
    await expect(d.dispatch('db_version', '1.1', 'novamon', ctx({ isAdmin: false, roles: ['member'] }), {})).rejects.toBeInstanceOf(PolicyNotAuthorized);
    await expect(d.dispatch('instance_actions', '1.1', 'novamon', ctx({ isAdmin: false, roles: ['member'] }), { instance })).rejects.toBeInstanceOf(PolicyNotAuthorized);
    await expect(d.dispatch('db_version', '1.1', 'novamon', ctx(), { verbose: true })).rejects.toBeInstanceOf(UnexpectedKeywordArgument);
    await expect(withRecords(false).dispatch('db_version', '1.1', 'novamon', ctx(), {})).rejects.toThrow(/does not support RPC method db_version/);
  });
});

describe('trigger_crash_dump', () => {
  it('injects an NMI and records the compute_trigger_crash_dump event', async () => {
    const { h, dispatcher } = setup();
    await dispatcher.dispatch('trigger_crash_dump', '6.0', null, ctx(), { instance });
    expect(h.driver.nmiCount(NAME_A)).toBe(1);
    expect(h.stores.actionRows.map((a) => a.action)).toEqual(['trigger_crash_dump']);
    expect(h.stores.eventRows.map((e) => [e.event, e.result])).toEqual([['compute_trigger_crash_dump', 'Success']]);
  });

  it('raises InstanceNotRunning for a powered-off guest, with an Error event and a fault', async () => {
    const { h, dispatcher } = setup();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A, powerState: PowerState.SHUTDOWN });
    await expect(dispatcher.dispatch('trigger_crash_dump', '5.0', null, ctx(), { instance })).rejects.toBeInstanceOf(InstanceNotRunning);
    expect(h.stores.eventRows.map((e) => e.result)).toEqual(['Error']);
    expect(h.stores.eventRows[0]?.traceback).toMatch(/InstanceNotRunning/);
    expect(h.stores.faultRows.length).toBe(1);
  });
});
