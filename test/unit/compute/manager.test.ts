import { describe, expect, it } from 'vitest';
import { decodeAsciiReplace, formatUptime, tailLog } from '../../../src/compute/manager.js';
import {
  ConsoleNotAvailable,
  ConsoleTypeInvalid,
  ConsoleTypeUnavailable,
  Invalid,
  InstanceInvalidState,
  InstanceNotFound,
  InstanceNotReady,
  InternalError,
  MonitorCommandFailed,
  NotImplementedByDriver,
  PolicyNotAuthorized,
} from '../../../src/exception.js';
import { UNSUPPORTED_OPERATIONS } from '../../../src/compute/unsupported.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { buildHarness, ctx, NAME_A, UUID_A } from './harness.js';

async function running(console = 'boot\nline2\nline3\n') {
  const h = buildHarness();
  h.driver.addInstance({ name: NAME_A, uuid: UUID_A, consoleOutput: console });
  const inst = await h.manager.resolve({ uuid: UUID_A, id: 10 });
  return { ...h, inst };
}

describe('console output (Nova _tail_log semantics)', () => {
  it('returns the last N lines split and joined on newlines', async () => {
    const { manager, inst } = await running('a\nb\nc\n');
    expect(await manager.getConsoleOutput(ctx(), inst, 2)).toBe('c\n');
    expect(await manager.getConsoleOutput(ctx(), inst, 3)).toBe('b\nc\n');
    expect(await manager.getConsoleOutput(ctx(), inst, null)).toBe('a\nb\nc\n');
    expect(await manager.getConsoleOutput(ctx(), inst, 0)).toBe('');
    expect(await manager.getConsoleOutput(ctx(), inst, 100)).toBe('a\nb\nc\n');
  });

  it('decodes as ASCII with replacement characters, like bytes.decode("ascii", "replace")', () => {
    expect(decodeAsciiReplace(Buffer.from([0x41, 0xc3, 0xa9, 0x0a]))).toBe('A\ufffd\ufffd\n');
    expect(tailLog(Buffer.from('x\ny'), 1).toString()).toBe('y');
  });

  it('records a fault when the guest has no console, and raises ConsoleNotAvailable', async () => {
    const h = buildHarness();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    const inst = await h.manager.resolve({ uuid: UUID_A, id: 10 });
    await expect(h.manager.getConsoleOutput(ctx(), inst, 5)).rejects.toBeInstanceOf(ConsoleNotAvailable);
    expect(h.stores.faultRows).toHaveLength(1);
    expect(h.stores.faultRows[0]).toMatchObject({ instanceUuid: UUID_A, code: 404, host: 'host1' });
  });

  it('does not record a fault for an unknown instance', async () => {
    const h = buildHarness();
    const inst = await h.manager.resolve({ uuid: UUID_A, id: 10 });
    await expect(h.manager.getConsoleOutput(ctx(), inst, 5)).rejects.toBeInstanceOf(InstanceNotFound);
    expect(h.stores.faultRows).toHaveLength(0);
  });
});

describe('instance resolution', () => {
  it('names the guest from the id with instance_name_template and writes its row once', async () => {
    const h = buildHarness();
    const inst = await h.manager.resolve({ uuid: UUID_A, id: 10, projectId: 'p1', userId: 'u1', displayName: 'web-1' });
    expect(inst.name).toBe('instance-0000000a');
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ name: NAME_A, host: 'host1', projectId: 'p1', displayName: 'web-1' });
  });

  it('finds a guest addressed by uuid alone from its row, and by id alone from its name', async () => {
    const h = buildHarness();
    await h.manager.resolve({ uuid: UUID_A, id: 10 });
    const byId = await buildHarnessWithRow();
    expect((await byId.manager.resolve({ id: 10 })).uuid).toBe(UUID_A);
    await expect(h.manager.resolve({ uuid: '99999999-2222-3333-4444-555555555555' })).rejects.toBeInstanceOf(InstanceNotFound);
  });
});

async function buildHarnessWithRow() {
  const h = buildHarness();
  await h.stores.instances.upsert({ uuid: UUID_A, id: 10, name: NAME_A, host: 'host1', node: 'host1' });
  return h;
}

describe('diagnostics', () => {
  it('answers for a running guest and keeps a snapshot', async () => {
    const { manager, inst, stores } = await running();
    const d = await manager.getInstanceDiagnostics(ctx(), inst);
    expect(d.state).toBe('running');
    expect(d.driver).toBe('libvirt');
    expect(d.cpuDetails.length).toBeGreaterThan(0);
    await new Promise((r) => setImmediate(r));
    expect(stores.diagnosticRows).toEqual([{ instanceUuid: UUID_A, state: 'running' }]);
  });

  it('refuses a paused guest with InstanceInvalidState naming the power state, as Nova does', async () => {
    const { manager, inst, driver } = await running();
    await driver.pause(inst);
    const err = await manager.getDiagnostics(ctx(), inst).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceInvalidState);
    expect((err as InstanceInvalidState).kwargs).toMatchObject({ attr: 'power_state', state: 'paused', method: 'get_diagnostics' });
  });
});

describe('consoles', () => {
  it('writes a token row (sha256 only) and returns the noVNC access URL', async () => {
    const { manager, inst, stores } = await running();
    const info = await manager.getVncConsole(ctx(), inst, 'novnc');
    expect(info.accessUrl).toBe(`http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3D${info.token}`);
    expect(stores.tokenRows).toHaveLength(1);
    expect(stores.tokenRows[0]?.tokenHash).not.toContain(info.token);
    expect(stores.tokenRows[0]).toMatchObject({ consoleType: 'novnc', port: info.port, instanceUuid: UUID_A });
    expect(await manager.validateConsolePort(ctx(), inst, info.port, 'novnc')).toBe(true);
    expect(await manager.validateConsolePort(ctx(), inst, info.port + 1, 'novnc')).toBe(false);
  });

  it('maps console type errors like Nova', async () => {
    const { manager, inst } = await running();
    await expect(manager.getVncConsole(ctx(), inst, 'spice-html5')).rejects.toBeInstanceOf(ConsoleTypeInvalid);
    await expect(manager.getSerialConsole(ctx(), inst, 'serial')).rejects.toBeInstanceOf(ConsoleTypeUnavailable);
    const off = buildHarness({ vncEnabled: false });
    off.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    await expect(off.manager.getVncConsole(ctx(), await off.manager.resolve({ uuid: UUID_A, id: 10 }), 'novnc')).rejects.toBeInstanceOf(ConsoleTypeUnavailable);
  });

  it('raises InstanceNotReady when the guest is not on the hypervisor', async () => {
    const h = buildHarness();
    const inst = await h.manager.resolve({ uuid: UUID_A, id: 10 });
    await expect(h.manager.getVncConsole(ctx(), inst, 'novnc')).rejects.toBeInstanceOf(InstanceNotReady);
  });
});

describe('power actions', () => {
  it('pause and unpause record the action, a Success event and the states', async () => {
    const { manager, inst, stores } = await running();
    await manager.pauseInstance(ctx({ requestId: 'req-p' }), inst);
    expect(stores.rows.get(UUID_A)).toMatchObject({ vmState: 'paused', powerState: PowerState.PAUSED, taskState: null });
    await manager.unpauseInstance(ctx({ requestId: 'req-u' }), inst);
    expect(stores.rows.get(UUID_A)).toMatchObject({ vmState: 'active', powerState: PowerState.RUNNING, taskState: null });
    expect(stores.actionRows.map((a) => [a.action, a.requestId])).toEqual([
      ['pause', 'req-p'],
      ['unpause', 'req-u'],
    ]);
    expect(stores.eventRows.map((e) => [e.event, e.result])).toEqual([
      ['compute_pause_instance', 'Success'],
      ['compute_unpause_instance', 'Success'],
    ]);
  });

  it("writes each action's last save with its event's finish where the store can, and finishes the event once", async () => {
    const { manager, inst, stores } = await running();
    const joint: Array<{ event: string | undefined; update: unknown; expected: unknown }> = [];
    const finishes: string[] = [];
    const eventFinish = stores.actions.eventFinish.bind(stores.actions);
    stores.actions.eventFinish = async (c, handle, o) => {
      finishes.push(handle.event);
      await eventFinish(c, handle, o);
    };
    stores.actions.saveAndFinishEvent = async (c, handle, save) => {
      joint.push({ event: handle.event, update: save.update, expected: save.expectedTaskState });
      await stores.instances.updateStates(save.uuid, save.update);
      await eventFinish(c, handle, { result: 'Success', details: null, traceback: null });
    };
    await manager.pauseInstance(ctx({ requestId: 'req-p' }), inst);
    await manager.rebootInstance(ctx({ requestId: 'req-r' }), inst, 'SOFT');
    expect(joint).toEqual([
      { event: 'compute_pause_instance', update: { powerState: PowerState.PAUSED, vmState: 'paused', taskState: null }, expected: 'pausing' },
      { event: 'compute_reboot_instance', update: { powerState: PowerState.RUNNING, vmState: 'active', taskState: null }, expected: undefined },
    ]);
    // The reboot's earlier saves (reboot_pending, reboot_started) stay their own writes, before the last.
    expect(stores.saves.map((x) => x.update.taskState)).toEqual([null, 'reboot_pending', 'reboot_started', null]);
    expect(finishes).toEqual([]);
    expect(stores.eventRows.map((e) => [e.event, e.result])).toEqual([
      ['compute_pause_instance', 'Success'],
      ['compute_reboot_instance', 'Success'],
    ]);
  });

  it('stop then start brings the guest back', async () => {
    const { manager, inst, stores, driver } = await running();
    await manager.stopInstance(ctx(), inst, false);
    expect(stores.rows.get(UUID_A)).toMatchObject({ vmState: 'stopped', powerState: PowerState.SHUTDOWN });
    await manager.startInstance(ctx({ requestId: 'req-2' }), inst);
    expect((await driver.getInfo(inst)).state).toBe(PowerState.RUNNING);
    expect(stores.rows.get(UUID_A)).toMatchObject({ vmState: 'active', powerState: PowerState.RUNNING });
  });

  it('a failed action leaves an Error event with a traceback, a fault, and task_state cleared', async () => {
    const { manager, inst, stores, driver } = await running();
    driver.injectFault(NAME_A, 'unpause', new InternalError('the monitor refused'));
    await expect(manager.unpauseInstance(ctx(), inst)).rejects.toBeInstanceOf(InternalError);
    const ev = stores.eventRows.at(-1);
    expect(ev?.result).toBe('Error');
    expect(ev?.traceback).toMatch(/nova\.exception\./);
    expect(stores.faultRows).toHaveLength(1);
    expect(stores.rows.get(UUID_A)?.taskState).toBeNull();
  });

  it('a hard reboot keeps the guest running', async () => {
    const { manager, inst, driver } = await running();
    await manager.rebootInstance(ctx(), inst, 'HARD');
    expect((await driver.getInfo(inst)).state).toBe(PowerState.RUNNING);
  });
});

describe('monitor passthrough policy', () => {
  it('runs an allowed command for an admin and audits it', async () => {
    const { manager, inst, stores } = await running();
    const out = await manager.monitorCommand(ctx(), inst, { kind: 'qmp', execute: 'query-status' });
    expect(out).toMatchObject({ status: 'running' });
    expect(stores.auditRows).toEqual([expect.objectContaining({ command: 'query-status', allowed: true, result: 'ok' })]);
  });

  it('refuses a member, and a command off the allow-list, and audits the refusal', async () => {
    const { manager, inst, stores } = await running();
    await expect(manager.monitorCommand(ctx({ isAdmin: false, roles: ['member'] }), inst, { kind: 'qmp', execute: 'query-status' })).rejects.toBeInstanceOf(PolicyNotAuthorized);
    await expect(manager.monitorCommand(ctx(), inst, { kind: 'qmp', execute: 'quit' })).rejects.toBeInstanceOf(Invalid);
    await expect(manager.monitorCommand(ctx(), inst, { kind: 'hmp', commandLine: 'quit' })).rejects.toBeInstanceOf(Invalid);
    await expect(
      manager.monitorCommand(ctx(), inst, { kind: 'qmp', execute: 'human-monitor-command', arguments: { 'command-line': 'system_reset' } }),
    ).rejects.toBeInstanceOf(Invalid);
    expect(stores.auditRows.map((r) => r.result)).toEqual(['refused', 'refused', 'refused', 'refused']);
    expect((await manager.monitorCommand(ctx(), inst, { kind: 'hmp', commandLine: 'info status' })) as string).toMatch(/running/);
  });

  it('refuses to run a command whose audit row cannot be written', async () => {
    const { manager, inst, stores, driver } = await running();
    stores.failAudit = true;
    const before = driver.calls.length;
    await expect(manager.monitorCommand(ctx(), inst, { kind: 'qmp', execute: 'query-status' })).rejects.toThrow(/unavailable/);
    expect(driver.calls.slice(before).some((c) => c.method === 'monitorCommand')).toBe(false);
  });

  it('passes QEMU errors through with their class', async () => {
    const h = buildHarness({ monitorAllowedCommands: ['no-such-command'] });
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    const inst = await h.manager.resolve({ uuid: UUID_A, id: 10 });
    const err = await h.manager.monitorCommand(ctx(), inst, { kind: 'qmp', execute: 'no-such-command' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MonitorCommandFailed);
    expect((err as MonitorCommandFailed).errorClass).toBe('CommandNotFound');
    expect(h.stores.auditRows[0]?.result).toBe('error');
  });
});

describe('host uptime', () => {
  it('looks like uptime(1)', () => {
    const line = formatUptime(new Date(2026, 0, 1, 10, 42, 1), 86400 + 3 * 3600 + 4 * 60, [0.5, 0.25, 1]);
    expect(line).toBe(' 10:42:01 up 1 day,  3:04,  0 users,  load average: 0.50, 0.25, 1.00');
  });
});

describe('operations this host does not perform', () => {
  const opOf = (method: string) => UNSUPPORTED_OPERATIONS.find((o) => o.method === method)!;

  it('suspend: NotImplementedError through Nova\'s decorators, and the task_state the API set is reverted', async () => {
    const { manager, inst, stores } = await running();
    await stores.instances.updateStates(UUID_A, { taskState: 'suspending' });
    const err = await manager.refuseUnsupported(ctx({ requestId: 'req-s' }), inst, opOf('suspend_instance')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotImplementedByDriver);
    expect((err as NotImplementedByDriver).className).toBe('NotImplementedError');
    expect(stores.actionRows.map((a) => [a.action, a.requestId])).toEqual([['suspend', 'req-s']]);
    expect(stores.eventRows.map((e) => [e.event, e.result])).toEqual([['compute_suspend_instance', 'Error']]);
    expect(stores.eventRows[0]?.traceback).toContain('NotImplementedError');
    expect(stores.faultRows).toEqual([expect.objectContaining({ instanceUuid: UUID_A, code: 501, host: 'host1' })]);
    expect(stores.rows.get(UUID_A)).toMatchObject({ taskState: null, vmState: 'active' });
  });

  it('delete: the instance goes to ERROR with task_state cleared, as a failing terminate does in Nova', async () => {
    const { manager, inst, stores } = await running();
    await stores.instances.updateStates(UUID_A, { taskState: 'deleting' });
    await expect(manager.refuseUnsupported(ctx(), inst, opOf('terminate_instance'))).rejects.toBeInstanceOf(NotImplementedByDriver);
    expect(stores.rows.get(UUID_A)).toMatchObject({ taskState: null, vmState: 'error' });
    expect(stores.eventRows.map((e) => [e.event, e.result])).toEqual([['compute_terminate_instance', 'Error']]);
  });

  it('attach_interface keeps the task_state (no reverts_task_state); reserve_block_device_name leaves a fault but no event', async () => {
    const { manager, inst, stores } = await running();
    await stores.instances.updateStates(UUID_A, { taskState: 'pausing' });
    await expect(manager.refuseUnsupported(ctx(), inst, opOf('attach_interface'))).rejects.toBeInstanceOf(NotImplementedByDriver);
    expect(stores.rows.get(UUID_A)?.taskState).toBe('pausing');
    await expect(manager.refuseUnsupported(ctx(), inst, opOf('reserve_block_device_name'))).rejects.toBeInstanceOf(NotImplementedByDriver);
    expect(stores.rows.get(UUID_A)?.taskState).toBeNull();
    expect(stores.eventRows.map((e) => e.event)).toEqual(['compute_attach_interface']);
    expect(stores.faultRows).toHaveLength(2);
  });

  it('a SPICE, RDP or MKS console is ConsoleTypeUnavailable, with a fault', async () => {
    const { manager, inst, stores } = await running();
    await expect(manager.unavailableConsole(ctx(), inst, 'spice-html5')).rejects.toBeInstanceOf(ConsoleTypeUnavailable);
    expect(stores.faultRows).toEqual([expect.objectContaining({ code: 400 })]);
  });
});
