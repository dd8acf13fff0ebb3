import { describe, expect, it } from 'vitest';
import type { GuestStats } from '../../../src/virt/qemu/diagnostics.js';
import type { GuestModel } from '../../../src/virt/qemu/model.js';
import { sampleGuests } from '../../../src/virt/qemu/samples.js';

function model(name: string): GuestModel {
  return {
    name,
    uuid: null,
    powerState: 1,
    status: 'running',
    reason: { event: 'connect', reason: null, guest: null, at: 0 },
    vnc: null,
    chardevs: [],
    blockDevices: [],
    nics: [],
    vcpus: [],
    connectedAt: 0,
  } as unknown as GuestModel;
}

const stats: GuestStats = {
  status: 'running',
  kvm: false,
  cpuTimeNs: 7,
  cpus: [{ id: 0, timeNs: 5 }],
  disks: [],
  nics: [],
  memory: { maximumBytes: 1, balloonActualBytes: null, guestStats: {}, usedBytes: null, rssKiB: null },
  uptime: 1,
  monitorSeconds: 0.001,
};

describe('sampleGuests', () => {
  it('leaves out a guest that outruns its timeout or fails, and counts it', async () => {
    const failedNames: string[] = [];
    const t0 = Date.now();
    const out = await sampleGuests(
      [model('frozen'), model('ok'), model('broken')],
      (m) => (m.name === 'frozen' ? new Promise<GuestStats>(() => undefined) : m.name === 'broken' ? Promise.reject(new Error('gone')) : Promise.resolve(stats)),
      { concurrency: 2, timeoutMs: 50 },
      (m) => failedNames.push(m.name),
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(out.samples.map((s) => s.view.name)).toEqual(['ok']);
    expect(out.failed).toBe(2);
    expect(failedNames.sort()).toEqual(['broken', 'frozen']);
  });

  it('never runs more collections at once than allowed', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await sampleGuests(
      Array.from({ length: 7 }, (_, i) => model(`g${i}`)),
      async () => {
        peak = Math.max(peak, ++inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        return stats;
      },
      { concurrency: 3, timeoutMs: 1000 },
      () => undefined,
    );
    expect(out.samples).toHaveLength(7);
    expect(peak).toBe(3);
  });
});
