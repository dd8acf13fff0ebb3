// The Nova control plane fixture itself: Nova's own nova-api, nova-conductor and nova-novncproxy
// (python3-nova) come up on their own vhost and databases, and a server the fixture creates in Nova's
// databases is what the unchanged `openstack` client lists and shows.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startNovaCloud, type NovaCloud } from '../fixtures/nova-cloud.js';

let cloud: NovaCloud;

beforeAll(async () => {
  cloud = await startNovaCloud();
}, 300_000);

afterAll(async () => {
  await cloud?.stop();
});

describe('Nova control plane fixture', () => {
  test('openstack lists and shows a server created on a named host, and the conductor is up', async () => {
    const uuid = randomUUID();
    const created = await cloud.createServer({ host: 'novamon-fixture-host', uuid, name: 'instance-0000002a', displayName: 'fixture-vm' });
    expect(created).toMatchObject({ uuid, id: 0x2a, name: 'instance-0000002a', host: 'novamon-fixture-host' });

    const list = await cloud.openstackJson<{ ID: string; Name: string; Status: string }[]>(['server', 'list']);
    expect(list).toContainEqual(expect.objectContaining({ ID: uuid, Name: 'fixture-vm', Status: 'ACTIVE' }));

    const show = await cloud.openstackJson<Record<string, unknown>>(['server', 'show', uuid], { microversion: '2.53' });
    expect(show).toMatchObject({
      'OS-EXT-SRV-ATTR:host': 'novamon-fixture-host',
      'OS-EXT-SRV-ATTR:instance_name': 'instance-0000002a',
      'OS-EXT-STS:vm_state': 'active',
      'OS-EXT-STS:task_state': null,
      'OS-EXT-STS:power_state': 1,
    });

    const services = await cloud.openstackJson<{ Binary: string; State: string; Status: string }[]>(['compute', 'service', 'list']);
    expect(services).toContainEqual(expect.objectContaining({ Binary: 'nova-conductor', State: 'up', Status: 'enabled' }));

    // Nova's noVNC proxy serves its page at the base URL the control plane hands out.
    const page = await fetch(cloud.novncproxyBaseUrl);
    expect(page.status).toBe(200);
  });

  test('createServer refuses a name whose instance id is taken, and says why', async () => {
    await expect(cloud.createServer({ host: 'h', name: 'instance-00000001' })).rejects.toThrow(/already taken/);
  });
});
