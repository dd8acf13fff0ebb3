// FakeDriver behaviours beyond the shared contract: the test controls other layers rely on
// (guest-initiated shutdown, panics, injected faults, a fake clock) and the ACPI-aware clean power off.

import { describe, expect, it } from 'vitest';
import { ConsoleNotAvailable, InstanceNotRunning, InternalError, MonitorCommandFailed, MonitorTimeout } from '../../../src/exception.js';
import type { LifecycleEvent } from '../../../src/virt/driver.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { PowerState } from '../../../src/virt/power-state.js';

function setup() {
  let now = 1_000_000;
  const driver = new FakeDriver({ clock: () => now });
  const events: LifecycleEvent[] = [];
  driver.onLifecycleEvent((e) => events.push(e));
  return { driver, events, advance: (ms: number) => (now += ms) };
}

const ref = { name: 'instance-00000001', uuid: '11111111-2222-3333-4444-555555555555' };

describe('FakeDriver', () => {
  it('an ACPI-aware guest powers off cleanly and stays in QEMU\'s shutdown state; power on resets it', async () => {
    const { driver, events } = setup();
    driver.addInstance({ ...ref, acpi: true });
    await driver.powerOff(ref, { timeout: 60, retryInterval: 10 });
    expect((await driver.getInfo(ref)).state).toBe(PowerState.SHUTDOWN);
    expect(events.at(-1)).toMatchObject({ transition: 'stopped', source: 'SHUTDOWN/guest-shutdown' });
    // QEMU is still there: its monitor answers.
    expect(await driver.monitorCommand(ref, { kind: 'qmp', execute: 'query-status' })).toMatchObject({ status: 'shutdown' });
    await expect(driver.monitorCommand(ref, { kind: 'qmp', execute: 'cont' })).rejects.toBeInstanceOf(MonitorCommandFailed);
    await driver.powerOn(ref);
    expect(events.at(-1)).toMatchObject({ transition: 'started', powerState: PowerState.RUNNING });
  });

  it('guest shutdown and panic come as events and show in get_info', async () => {
    const { driver, events } = setup();
    driver.addInstance(ref);
    driver.guestPanic(ref.name);
    expect((await driver.getInfo(ref)).state).toBe(PowerState.CRASHED);
    expect(events.at(-1)?.transition).toBe('crashed');
    await expect(driver.unpause(ref)).rejects.toBeInstanceOf(InstanceNotRunning);
    await driver.reboot(ref, 'HARD');
    expect((await driver.getInfo(ref)).state).toBe(PowerState.RUNNING);
    driver.guestShutdown(ref.name);
    expect(events.at(-1)).toMatchObject({ transition: 'stopped', uuid: ref.uuid });
  });

  it('monitor commands change state like QEMU\'s, with events', async () => {
    const { driver, events } = setup();
    driver.addInstance(ref);
    await driver.monitorCommand(ref, { kind: 'qmp', execute: 'stop' });
    expect((await driver.getInfo(ref)).state).toBe(PowerState.PAUSED);
    expect(events.at(-1)?.transition).toBe('paused');
    expect(await driver.monitorCommand(ref, { kind: 'hmp', commandLine: 'info status' })).toBe('VM status: paused\r\n');
  });

  it('CPU time and uptime follow the clock, and stop while paused', async () => {
    const { driver, advance } = setup();
    driver.addInstance(ref);
    advance(2000);
    await driver.pause(ref);
    advance(5000);
    const d = await driver.getInstanceDiagnostics(ref);
    expect(d.cpuDetails[0]?.time).toBe(2_000_000_000);
    expect(d.uptime).toBe(7);
  });

  it('injected faults fire once; frozen guests time out; consoles can be absent or grow', async () => {
    const { driver } = setup();
    driver.addInstance({ ...ref, consoleOutput: 'a\n' });
    driver.injectFault(ref.name, 'pause', new InternalError('boom'));
    await expect(driver.pause(ref)).rejects.toThrow('boom');
    await driver.pause(ref);
    driver.freeze(ref.name);
    await expect(driver.getInfo(ref)).rejects.toBeInstanceOf(MonitorTimeout);
    driver.thaw(ref.name);
    driver.appendConsoleOutput(ref.name, 'b\n');
    expect((await driver.getConsoleOutput(ref)).toString()).toBe('a\nb\n');
    driver.addInstance({ name: 'instance-00000002' });
    await expect(driver.getConsoleOutput({ name: 'instance-00000002' })).rejects.toBeInstanceOf(ConsoleNotAvailable);
    expect(driver.calls.filter((c) => c.method === 'pause')).toHaveLength(2);
  });

  it('lists guests added powered off', async () => {
    const { driver } = setup();
    driver.addInstance({ name: 'instance-00000003', uuid: null, powerState: PowerState.SHUTDOWN });
    expect(await driver.listInstances()).toEqual([{ name: 'instance-00000003', uuid: null, powerState: PowerState.SHUTDOWN }]);
    await driver.powerOn({ name: 'instance-00000003' });
    expect((await driver.getInfo({ name: 'instance-00000003' })).state).toBe(PowerState.RUNNING);
  });
});
