import { describe, expect, it } from 'vitest';
import { describeRunEvent } from '../../../src/compute/run-events.js';
import { guestRunEvent } from '../../../src/virt/qemu/events.js';

describe('guest run events from QMP', () => {
  it('keeps QEMU\'s reason and whether the guest asked, for the four events only', () => {
    const e = guestRunEvent('instance-00000001', null, { event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 10, microseconds: 5000 } });
    expect(e).toMatchObject({ event: 'SHUTDOWN', reason: 'guest-shutdown', guest: true, action: null, timestamp: 10_005 });
    expect(describeRunEvent(e!)).toBe('reason=guest-shutdown guest=true');
    expect(guestRunEvent('instance-00000001', null, { event: 'STOP' })).toBeNull();
    // The registry's synthesised disconnect is not something QEMU said.
    expect(guestRunEvent('instance-00000001', null, { event: 'SHUTDOWN', data: { guest: false, reason: 'disconnect' } })).toBeNull();
  });

  it('type-checks and trims what QEMU or a guest controls', () => {
    const e = guestRunEvent('instance-00000001', 'u', { event: 'GUEST_PANICKED', data: { action: 'pause', info: { type: 'hyper-v', arg1: 1 }, guest: 'yes', reason: 'x'.repeat(500) } });
    expect(e).toMatchObject({ action: 'pause', guest: null, info: { type: 'hyper-v', arg1: 1 } });
    expect(e?.reason?.length).toBe(64);
    expect(guestRunEvent('instance-00000001', null, { event: 'GUEST_CRASHLOADED', data: { action: 'run', info: [1, 2] } })).toMatchObject({ info: null, action: 'run' });
  });
});
