// A compute layer on the fake driver and in-memory stores, built the way the composition root builds it.
import 'reflect-metadata';
import { Container } from 'inversify';
import { ComputeManager } from '../../../src/compute/manager.js';
import { InstanceResolver } from '../../../src/compute/instance-resolver.js';
import { InstanceRecorder } from '../../../src/compute/recorder.js';
import { MonitorPolicy } from '../../../src/compute/monitor-policy.js';
import { PowerStateSync } from '../../../src/compute/lifecycle.js';
import { ComputeLogger, ComputeNotifier, ComputeSettings, ComputeStores, noNotifications, type ComputeSettingsShape } from '../../../src/compute/tokens.js';
import type { RequestContext } from '../../../src/context.js';
import { silentLogger } from '../../../src/logging.js';
import { ComputeDriver } from '../../../src/virt/driver.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { memoryStores, type MemoryStores } from './memory-stores.js';

export const UUID_A = '11111111-2222-3333-4444-555555555555';
export const NAME_A = 'instance-0000000a';

export function settings(overrides: Partial<ComputeSettingsShape> = {}): ComputeSettingsShape {
  return {
    host: 'host1',
    instanceNameTemplate: 'instance-%08x',
    shutdownTimeout: 0,
    shutdownRetryInterval: 1,
    tokenTtl: 600,
    vncEnabled: true,
    novncProxyBaseUrl: 'http://127.0.0.1:6080/vnc_auto.html',
    vncProxyClientAddress: '127.0.0.1',
    serialEnabled: false,
    serialBaseUrl: 'ws://127.0.0.1:6083/',
    serialProxyClientAddress: '127.0.0.1',
    syncPowerStateInterval: -1,
    defaultInstanceProject: '',
    defaultInstanceUser: '',
    monitorAllowedCommands: ['query-status', 'human-monitor-command', 'info status', 'info vnc'],
    ...overrides,
  };
}

export interface Harness {
  driver: FakeDriver;
  stores: MemoryStores;
  manager: ComputeManager;
  sync: PowerStateSync;
}

export function buildHarness(overrides: Partial<ComputeSettingsShape> = {}): Harness {
  const container = new Container();
  const driver = new FakeDriver();
  const stores = memoryStores();
  container.bind(ComputeDriver).toConstantValue(driver);
  container.bind(ComputeSettings).toConstantValue(settings(overrides));
  container.bind(ComputeStores).toConstantValue(stores);
  container.bind(ComputeLogger).toConstantValue(silentLogger());
  container.bind(ComputeNotifier).toConstantValue(noNotifications);
  container.bind(ComputeManager).toSelf().inSingletonScope();
  container.bind(InstanceResolver).toSelf().inSingletonScope();
  container.bind(InstanceRecorder).toSelf().inSingletonScope();
  container.bind(MonitorPolicy).toSelf().inSingletonScope();
  container.bind(PowerStateSync).toSelf().inSingletonScope();
  return { driver, stores, manager: container.get(ComputeManager), sync: container.get(PowerStateSync) };
}

export function ctx(overrides: Partial<RequestContext> = {}): RequestContext {
  return { userId: 'u1', projectId: 'p1', isAdmin: true, roles: ['admin'], requestId: 'req-1', globalRequestId: null, raw: {}, ...overrides };
}
