// Service registration and heartbeat as nova/service.py and the servicegroup db driver make them.
import { describe, expect, it } from 'vitest';
import { ConductorClient } from '../../../src/conductor/client.js';
import { SERVICE_VERSION, ServiceMembership } from '../../../src/conductor/service-membership.js';
import { silentLogger } from '../../../src/logging.js';
import { FakeConductor } from './fake-conductor.js';

function member(conductor: FakeConductor) {
  return new ServiceMembership(new ConductorClient(conductor, silentLogger()), { host: 'cmp1', reportInterval: 0, logger: silentLogger() });
}

describe('service membership', () => {
  it('pings the conductor, creates the nova-compute row with the Zed version, then beats report_count up', async () => {
    const c = new FakeConductor();
    const m = member(c);
    await m.join();
    expect(c.calls[0]).toMatchObject({ method: 'ping', target: { topic: 'conductor', namespace: 'baseapi' } });
    const create = c.calls.find((x) => x.method === 'object_action');
    expect(create?.args['objinst']).toMatchObject({
      'nova_object.name': 'Service',
      'nova_object.version': '1.22',
      'nova_object.data': { host: 'cmp1', binary: 'nova-compute', topic: 'compute', report_count: 0, version: SERVICE_VERSION },
    });
    await m.beat();
    await m.beat();
    const last = c.calls.at(-1)?.args['objinst'] as Record<string, unknown>;
    expect(last['nova_object.changes']).toEqual(['report_count']);
    expect(c.services[0]).toMatchObject({ report_count: 2 });
    expect(m.status()).toMatchObject({ id: 1, uuid: 'svc-uuid', reportCount: 2, heartbeats: 2, disabled: false });
    await m.close();
  });

  it('reuses an existing row (version updated), keeps its count, and learns it was disabled', async () => {
    const c = new FakeConductor();
    c.services.push({ id: 7, host: 'cmp1', binary: 'nova-compute', topic: 'compute', report_count: 41, version: 61, disabled: false });
    const m = member(c);
    await m.join();
    expect(c.services[0]).toMatchObject({ version: SERVICE_VERSION });
    c.services[0]!['disabled'] = true;
    await m.beat();
    expect(c.services[0]).toMatchObject({ report_count: 42 });
    expect(m.status()).toMatchObject({ disabled: true, reportCount: 42 });
  });

  it('a vanished row is logged and the service keeps running (Nova does not re-create it)', async () => {
    const c = new FakeConductor();
    const m = member(c);
    await m.join();
    c.services = [];
    await m.beat();
    expect(m.status()).toMatchObject({ disconnected: true });
    expect(c.services).toHaveLength(0);
  });
});
