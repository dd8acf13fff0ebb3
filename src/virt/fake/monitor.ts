// What the fake guest's "monitor" answers: the QMP and HMP commands the layers above send through
// monitorCommand, and the diagnostics a QEMU of that shape would report.

import { MonitorCommandFailed } from '../../exception.js';
import type { Diagnostics, LegacyDiagnostics } from '../driver.js';
import { powerStateName } from '../power-state.js';
import { guestCpuMs, guestPowerState, type FakeGuest, type FakeTransitions } from './guest.js';

/** Runs one QMP command against `g`; commands that change the run state go through `t`. */
export function fakeQmp(g: FakeGuest, execute: string, t: FakeTransitions): unknown {
  switch (execute) {
    case 'query-status':
      return { status: g.status, singlestep: false, running: g.status === 'running' };
    case 'query-name':
      return { name: g.name };
    case 'query-uuid':
      return { UUID: g.uuid ?? '00000000-0000-0000-0000-000000000000' };
    case 'query-kvm':
      return { enabled: false, present: false };
    case 'query-vnc':
      return g.vnc ? { enabled: true, auth: 'none', family: 'ipv4', clients: [], service: String(g.vnc.port), host: g.vnc.host } : { enabled: false };
    case 'stop':
      if (g.status === 'running') t.pause(g);
      return {};
    case 'cont':
      if (g.status === 'shutdown' || g.status === 'guest-panicked') {
        throw new MonitorCommandFailed('GenericError', 'Resetting the Virtual Machine is required');
      }
      if (g.status !== 'running') t.setRunning(g, 'resumed', 'RESUME');
      return {};
    case 'system_reset':
      return {};
    case 'system_powerdown':
      if (g.acpi && g.status === 'running') t.guestShutdown(g);
      return {};
    default:
      throw new MonitorCommandFailed('CommandNotFound', `The command ${execute} has not been found`);
  }
}

export function fakeHmp(g: FakeGuest, line: string): string {
  const cmd = line.trim();
  if (cmd === 'info status') {
    const shown = g.status === 'running' || g.status === 'paused' ? g.status : `paused (${g.status})`;
    return `VM status: ${shown}\r\n`;
  }
  if (cmd === 'info name') return `${g.name}\r\n`;
  return `unknown command: '${cmd.split(/\s+/)[0] ?? ''}'\r\n`;
}

/** A MAC address derived from the instance id, as the fixture guests get theirs. */
export function fakeMac(id: number): string {
  return `52:54:00:${[16, 8, 0].map((s) => ((id >> s) & 0xff).toString(16).padStart(2, '0')).join(':')}`;
}

export function fakeDiagnostics(g: FakeGuest, now: number, mac: string): Diagnostics {
  const cpuNs = Math.round(guestCpuMs(g, now) * 1e6);
  return {
    state: powerStateName(guestPowerState(g)) as Diagnostics['state'],
    driver: 'libvirt',
    hypervisor: 'fake',
    hypervisorOs: 'linux',
    uptime: Math.floor((now - g.startedAt) / 1000),
    configDrive: false,
    cpuDetails: Array.from({ length: g.vcpus }, (_, id) => ({ id, time: cpuNs, utilisation: null })),
    nicDetails: [
      {
        macAddress: mac,
        rxOctets: null, rxErrors: null, rxDrop: null, rxPackets: null, rxRate: null,
        txOctets: null, txErrors: null, txDrop: null, txPackets: null, txRate: null,
      },
    ],
    diskDetails: [{ device: 'vda', readBytes: 512, readRequests: 1, writeBytes: 0, writeRequests: 0, errorsCount: 0 }],
    memoryDetails: { maximum: g.memoryMiB, used: null },
  };
}

export function fakeLegacyDiagnostics(g: FakeGuest, now: number): LegacyDiagnostics {
  const cpuNs = Math.round(guestCpuMs(g, now) * 1e6);
  const out: LegacyDiagnostics = {};
  for (let i = 0; i < g.vcpus; i++) out[`cpu${i}_time`] = cpuNs;
  Object.assign(out, { vda_read: 512, vda_read_req: 1, vda_write: 0, vda_write_req: 0, vda_errors: 0 });
  out['memory'] = g.memoryMiB * 1024;
  out['memory-actual'] = g.memoryMiB * 1024;
  return out;
}
