// A guest's NICs as the host sees them: HMP `info network` (QMP has no other way to name a NIC's backend
// and its tap device) and the tap device's counters in /sys/class/net, which is where libvirt reads them.

import type { QmpRxFilterInfo } from '../../qmp/commands.js';
import type { GuestNic, NicDiagnostics } from '../driver.js';
import { readKernelText } from './proc.js';

export interface NetworkLine {
  name: string;
  mac: string | null;
  peerType: string | null;
  ifname: string | null;
}

/**
 * Parses HMP `info network`: a NIC line (`net0: index=0,type=nic,model=...,macaddr=...`) followed by its
 * peer (` \ hostnet0: index=0,type=user,...` or `type=tap,ifname=tap0,...`).
 */
export function parseInfoNetwork(text: string): NetworkLine[] {
  const nics: NetworkLine[] = [];
  for (const line of text.split(/\r?\n/)) {
    const nic = /^(\S+): index=\d+,type=nic,(.*)$/.exec(line);
    if (nic?.[1]) {
      nics.push({ name: nic[1], mac: /macaddr=([0-9a-fA-F:]{17})/.exec(nic[2] ?? '')?.[1]?.toLowerCase() ?? null, peerType: null, ifname: null });
      continue;
    }
    const peer = /^\s*\\ \S+: index=\d+,type=(\w+)(.*)$/.exec(line);
    const last = nics[nics.length - 1];
    if (peer && last && last.peerType === null) {
      last.peerType = peer[1] ?? null;
      last.ifname = /ifname=([^,\s]+)/.exec(peer[2] ?? '')?.[1] ?? null;
    }
  }
  return nics;
}

export type NicCounters = Omit<NicDiagnostics, 'macAddress' | 'rxRate' | 'txRate'>;

const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

function readCounter(ifname: string, counter: string): number | null {
  // sysfs answers at once: read synchronously, as the /proc files (see readKernelText).
  const text = readKernelText(`/sys/class/net/${ifname}/statistics/${counter}`);
  const v = text === null ? NaN : Number(text.trim());
  return Number.isFinite(v) ? v : null;
}

/** Counters of a host tap device, seen from the guest: the tap's tx is the guest's rx (libvirt swaps too). */
export function tapCounters(ifname: string): NicCounters | null {
  // The name came from QEMU: never let it walk out of /sys/class/net.
  if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..') return null;
  const [rxB, rxP, rxE, rxD, txB, txP, txE, txD] = ['rx_bytes', 'rx_packets', 'rx_errors', 'rx_dropped', 'tx_bytes', 'tx_packets', 'tx_errors', 'tx_dropped'].map((c) =>
    readCounter(ifname, c),
  );
  if ([rxB, rxP, rxE, rxD, txB, txP, txE, txD].every((v) => v === null)) return null;
  return {
    rxOctets: txB ?? null, rxPackets: txP ?? null, rxErrors: txE ?? null, rxDrop: txD ?? null,
    txOctets: rxB ?? null, txPackets: rxP ?? null, txErrors: rxE ?? null, txDrop: rxD ?? null,
  };
}

/** The guest's NICs from query-rx-filter (guest-programmed MACs) and `info network` (backends, taps). */
export function toNetDevices(rxFilter: readonly QmpRxFilterInfo[], infoNetwork: string | null): GuestNic[] {
  const lines = infoNetwork ? parseInfoNetwork(infoNetwork) : [];
  const byName = new Map(lines.map((l) => [l.name, l]));
  const names = [...new Set([...lines.map((l) => l.name), ...rxFilter.map((r) => r.name)])];
  return names.map((name) => {
    const line = byName.get(name);
    // The rx-filter MAC is what the guest programmed; `info network` shows the configured one.
    const mac = rxFilter.find((r) => r.name === name)?.['main-mac'].toLowerCase() ?? line?.mac ?? null;
    return { name, mac, peerType: line?.peerType ?? null, hostDevice: line?.peerType === 'tap' && line.ifname ? line.ifname : null };
  });
}
