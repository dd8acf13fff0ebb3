// The libvirt driver's run events from the messages libvirtd sends: QEMU monitor events relayed through
// the libvirt-qemu program (decoded from their XDR), the second SHUTDOWN of one run (libvirt stopping a
// guest that already shut down), operations of ours, and the lifecycle fallback when the passthrough is refused.

import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/logging.js';
import type { GuestRunEvent } from '../../../src/virt/driver.js';
import { decodeEventMessage, type EventMessage } from '../../../src/virt/libvirt/event-messages.js';
import type { RunEventSource } from '../../../src/virt/libvirt/host.js';
import { DomainEvent, QEMU_PROGRAM, QemuProc, REMOTE_PROGRAM, RemoteProc, writeDomain, type DomainHandle } from '../../../src/virt/libvirt/protocol.js';
import { LibvirtRunEvents, RUN_EVENT_PATTERN } from '../../../src/virt/libvirt/run-events.js';
import { XdrReader, XdrWriter } from '../../../src/virt/libvirt/xdr.js';

const DOM: DomainHandle = { name: 'instance-00000001', uuid: Buffer.alloc(16, 0xab), id: 3 };
const UUID = 'abababab-abab-abab-abab-abababababab';

function monitorMessage(event: string, details: string | null, seconds = 1_700_000_000n, micros = 250_000): EventMessage {
  const w = new XdrWriter().int(9);
  writeDomain(w, DOM);
  w.string(event).hyper(seconds).uint(micros).optional(details, (x, v) => x.string(v));
  const m = decodeEventMessage(QEMU_PROGRAM, QemuProc.DOMAIN_MONITOR_EVENT, new XdrReader(w.toBuffer()));
  if (!m) throw new Error('not decoded');
  return m;
}

function lifecycle(event: number, detail = 0, domain = DOM): EventMessage {
  return { kind: 'lifecycle', callbackId: 1, domain, event, detail };
}

function setup(source: RunEventSource = 'monitor') {
  const runs = new LibvirtRunEvents(() => source, (n) => /^instance-[0-9a-f]{8}$/.test(n), silentLogger());
  const seen: GuestRunEvent[] = [];
  runs.onRunEvent((e) => seen.push(e));
  return { runs, seen };
}

describe('libvirt run events', () => {
  it('asks libvirtd for exactly the four run events', () => {
    const re = new RegExp(RUN_EVENT_PATTERN);
    expect(['SHUTDOWN', 'RESET', 'GUEST_PANICKED', 'GUEST_CRASHLOADED'].every((e) => re.test(e))).toBe(true);
    expect(['STOP', 'RESUME', 'SHUTDOWN_X', 'XRESET', 'RTC_CHANGE'].some((e) => re.test(e))).toBe(false);
  });

  it('decodes a relayed QMP event and keeps QEMU\'s reason, guest flag and timestamp', () => {
    const m = monitorMessage('SHUTDOWN', '{"guest":true,"reason":"guest-shutdown"}');
    expect(m).toMatchObject({ kind: 'monitor', callbackId: 9, domain: DOM, event: 'SHUTDOWN', seconds: 1_700_000_000, micros: 250_000 });
    const { runs, seen } = setup();
    runs.handle(m);
    expect(seen).toEqual([{
      name: DOM.name, uuid: UUID, event: 'SHUTDOWN', reason: 'guest-shutdown', guest: true, action: null, info: null,
      timestamp: 1_700_000_000_250, duringOperation: false,
    }]);
    expect(runs.reason(DOM.name)).toEqual({ event: 'SHUTDOWN', reason: 'guest-shutdown', guest: true, at: 1_700_000_000_250 });
  });

  it('reports the guest\'s SHUTDOWN but not libvirt\'s SIGTERM that follows it, until the guest runs again', () => {
    const { runs, seen } = setup();
    runs.handle(monitorMessage('SHUTDOWN', '{"guest":true,"reason":"guest-shutdown"}'));
    runs.handle(lifecycle(DomainEvent.SHUTDOWN, 1));
    runs.handle(monitorMessage('SHUTDOWN', '{"guest":false,"reason":"host-signal"}'));
    runs.handle(lifecycle(DomainEvent.STOPPED, 0));
    expect(seen.map((e) => e.reason)).toEqual(['guest-shutdown']);
    // libvirt's STOPPED says less than QEMU did: the reason stays QEMU's.
    expect(runs.reason(DOM.name)).toMatchObject({ event: 'SHUTDOWN', reason: 'guest-shutdown', guest: true });
    runs.handle(lifecycle(DomainEvent.STARTED, 0));
    expect(runs.reason(DOM.name)).toMatchObject({ event: 'STARTED', reason: '0', guest: null });
    runs.handle(monitorMessage('SHUTDOWN', '{"guest":false,"reason":"host-signal"}'));
    expect(seen.map((e) => e.reason)).toEqual(['guest-shutdown', 'host-signal']);
  });

  it('keeps a panic\'s action and info, and ignores hostile or malformed data', () => {
    const { runs, seen } = setup();
    runs.handle(monitorMessage('GUEST_PANICKED', '{"action":"pause","info":{"type":"hyper-v","arg1":1}}'));
    runs.handle(monitorMessage('RESET', 'not json {'));
    runs.handle(monitorMessage('GUEST_CRASHLOADED', '[1,2]'));
    runs.handle(monitorMessage('STOP', null));
    expect(seen.map((e) => [e.event, e.action, e.info])).toEqual([
      ['GUEST_PANICKED', 'pause', { type: 'hyper-v', arg1: 1 }],
      ['RESET', null, null],
      ['GUEST_CRASHLOADED', null, null],
    ]);
  });

  it('marks events during (and just after) an operation of ours, and ignores domains that are not ours', async () => {
    const { runs, seen } = setup();
    await runs.during(DOM.name, async () => runs.handle(monitorMessage('RESET', '{"guest":false,"reason":"host-qmp-system-reset"}')));
    runs.handle(monitorMessage('RESET', '{"guest":true,"reason":"guest-reset"}'));
    const foreign = { ...DOM, name: 'not-ours' };
    runs.handle({ kind: 'lifecycle', callbackId: 1, domain: foreign, event: DomainEvent.CRASHED, detail: 0 });
    expect(seen.map((e) => [e.reason, e.duringOperation])).toEqual([['host-qmp-system-reset', true], ['guest-reset', true]]);
  });

  it('falls back to lifecycle and reboot events, without QEMU\'s reasons, when the passthrough is refused', () => {
    const { runs, seen } = setup('lifecycle');
    runs.handle(lifecycle(DomainEvent.SHUTDOWN, 1));
    runs.handle(lifecycle(DomainEvent.STOPPED, 0));
    runs.handle({ kind: 'reboot', callbackId: 2, domain: DOM });
    runs.handle(lifecycle(DomainEvent.CRASHED, 0));
    runs.handle(lifecycle(DomainEvent.CRASHED, 1));
    runs.handle(lifecycle(DomainEvent.SHUTDOWN, 2));
    expect(seen.map((e) => [e.event, e.reason, e.guest])).toEqual([
      ['SHUTDOWN', null, true],
      ['RESET', null, null],
      ['GUEST_PANICKED', null, null],
      ['GUEST_CRASHLOADED', null, null],
      ['SHUTDOWN', null, false],
    ]);
    // With the passthrough on, the same lifecycle events are no run events (QEMU's own ones are).
    const on = setup('monitor');
    on.runs.handle(lifecycle(DomainEvent.CRASHED, 0));
    on.runs.handle({ kind: 'reboot', callbackId: 2, domain: DOM });
    expect(on.seen).toEqual([]);
  });

  it('decodes lifecycle and reboot messages and leaves other procedures alone', () => {
    const w = new XdrWriter().int(4);
    writeDomain(w, DOM);
    expect(decodeEventMessage(REMOTE_PROGRAM, RemoteProc.DOMAIN_EVENT_CALLBACK_REBOOT, new XdrReader(w.toBuffer()))).toEqual({ kind: 'reboot', callbackId: 4, domain: DOM });
    expect(decodeEventMessage(REMOTE_PROGRAM, 999, new XdrReader(Buffer.alloc(0)))).toBeNull();
  });

  it('decodes device hot-plug and removal, which are never run events, not even as the reboot fallback', () => {
    const device = (proc: number, alias: string): EventMessage | null => {
      const w = new XdrWriter().int(7);
      writeDomain(w, DOM);
      w.string(alias);
      return decodeEventMessage(REMOTE_PROGRAM, proc, new XdrReader(w.toBuffer()));
    };
    const added = device(RemoteProc.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED, 'virtio-disk1');
    expect(added).toEqual({ kind: 'device', callbackId: 7, domain: DOM, alias: 'virtio-disk1', added: true });
    expect(device(RemoteProc.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED, 'x'.repeat(1000))).toMatchObject({ kind: 'device', added: false, alias: 'x'.repeat(256) });
    const { runs, seen } = setup('lifecycle');
    runs.handle(added as EventMessage);
    expect(seen).toEqual([]);
  });
});
