import { describe, expect, it } from 'vitest';
import { syncDecision } from '../../../src/compute/lifecycle.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { buildHarness, NAME_A, UUID_A } from './harness.js';

describe('power-state sync decision (Nova _sync_instance_power_state)', () => {
  const row = (vmState: string, powerState: number, taskState: string | null = null) => ({ vmState, powerState, taskState });
  it('stores the new power state and stops an active instance found shut down', () => {
    expect(syncDecision(row('active', 1), PowerState.SHUTDOWN)).toEqual({ powerState: 4, vmState: 'stopped' });
    expect(syncDecision(row('active', 1), PowerState.CRASHED)).toEqual({ powerState: 6, vmState: 'stopped' });
  });
  it('ignores an unexpected pause, as Nova does (vm_state stays active)', () => {
    expect(syncDecision(row('active', 1), PowerState.PAUSED)).toEqual({ powerState: 3 });
  });
  it('leaves a guest running while vm_state is stopped (only the power state is updated)', () => {
    expect(syncDecision(row('stopped', 4), PowerState.RUNNING)).toEqual({ powerState: 1 });
  });
  it('skips instances with a pending task, and does nothing when nothing changed', () => {
    expect(syncDecision(row('active', 1, 'powering-off'), PowerState.SHUTDOWN)).toBeNull();
    expect(syncDecision(row('active', 1), PowerState.RUNNING)).toBeNull();
  });
  it('does not stop an instance that is merely not found (NOSTATE)', () => {
    expect(syncDecision(row('active', 1), PowerState.NOSTATE)).toEqual({ powerState: 0 });
  });
});

describe('discovery and lifecycle events', () => {
  it('discovers guests, owns them by the configured defaults, and applies events in order', async () => {
    const h = buildHarness({ defaultInstanceProject: 'p9', defaultInstanceUser: 'u9' });
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    h.driver.addInstance({ name: 'instance-0000000b', uuid: null, powerState: PowerState.SHUTDOWN });
    await h.sync.start();
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ id: 10, name: NAME_A, vmState: 'active', powerState: 1, projectId: 'p9', userId: 'u9' });
    const b = [...h.stores.rows.values()].find((r) => r.name === 'instance-0000000b');
    expect(b).toMatchObject({ id: 11, vmState: 'stopped', powerState: 4 });
    expect(b?.uuid).toMatch(/^[0-9a-f-]{36}$/);

    await h.driver.pause({ name: NAME_A });
    await h.sync.close();
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ powerState: PowerState.PAUSED, vmState: 'active' });
    expect(h.sync.eventsHandled).toBeGreaterThan(0);
  });

  it('a guest that shuts itself down becomes stopped', async () => {
    const h = buildHarness();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    await h.sync.start();
    h.driver.guestShutdown(NAME_A);
    await h.sync.close();
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ powerState: PowerState.SHUTDOWN, vmState: 'stopped' });
  });

  it('the periodic pass repairs a missed change', async () => {
    const h = buildHarness();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    await h.sync.start();
    await h.stores.instances.updateStates(UUID_A, { powerState: PowerState.PAUSED });
    await h.sync.syncAll();
    expect(h.stores.rows.get(UUID_A)?.powerState).toBe(PowerState.RUNNING);
    await h.sync.close();
  });
});

describe('guests that appear after start-up', () => {
  it('a new guest whose first event is a panic gets a row and is stopped, as Nova stops an ACTIVE instance found CRASHED', async () => {
    const h = buildHarness();
    await h.sync.start();
    expect(h.stores.rows.size).toBe(0);
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A });
    h.driver.guestPanic(NAME_A);
    await h.sync.close();
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ vmState: 'stopped', taskState: null });
    expect(h.stores.actionRows.some((a) => a.instanceUuid === UUID_A && a.action === 'stop')).toBe(true);
  });

  it('a guest found crashed at discovery is stopped, not left ACTIVE', async () => {
    const h = buildHarness();
    h.driver.addInstance({ name: NAME_A, uuid: UUID_A, powerState: PowerState.CRASHED });
    await h.sync.start();
    await h.sync.close();
    expect(h.stores.rows.get(UUID_A)).toMatchObject({ vmState: 'stopped', taskState: null });
  });
});
