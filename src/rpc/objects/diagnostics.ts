// Diagnostics (1.0) and its nested CpuDiagnostics, NicDiagnostics, DiskDiagnostics and
// MemoryDiagnostics (1.0) as Nova's get_instance_diagnostics returns them over RPC, and the same
// fields as the REST API's 2.48+ view shows them.

import type { Diagnostics } from '../../virt/driver.js';
import { toPrimitive, type NovaObjectPrimitive } from './primitive.js';

/** The snake_case fields of Nova's Diagnostics object, nested objects as plain dicts. */
export function diagnosticsFields(d: Diagnostics): Record<string, unknown> {
  return {
    state: d.state,
    driver: d.driver,
    hypervisor: d.hypervisor,
    hypervisor_os: d.hypervisorOs,
    uptime: d.uptime,
    config_drive: d.configDrive,
    num_cpus: d.cpuDetails.length,
    num_nics: d.nicDetails.length,
    num_disks: d.diskDetails.length,
    cpu_details: d.cpuDetails.map((c) => ({ id: c.id, time: c.time, utilisation: c.utilisation })),
    nic_details: d.nicDetails.map((n) => ({
      mac_address: n.macAddress,
      rx_octets: n.rxOctets,
      rx_errors: n.rxErrors,
      rx_drop: n.rxDrop,
      rx_packets: n.rxPackets,
      rx_rate: n.rxRate,
      tx_octets: n.txOctets,
      tx_errors: n.txErrors,
      tx_drop: n.txDrop,
      tx_packets: n.txPackets,
      tx_rate: n.txRate,
    })),
    disk_details: d.diskDetails.map((k) => ({
      read_bytes: k.readBytes,
      read_requests: k.readRequests,
      write_bytes: k.writeBytes,
      write_requests: k.writeRequests,
      errors_count: k.errorsCount,
    })),
    memory_details: { maximum: d.memoryDetails.maximum, used: d.memoryDetails.used },
  };
}

function nested(name: string, data: Record<string, unknown>): NovaObjectPrimitive {
  return toPrimitive(name, '1.0', data);
}

/** The Diagnostics v1.0 primitive a Nova client deserialises. */
export function diagnosticsPrimitive(d: Diagnostics): NovaObjectPrimitive {
  const f = diagnosticsFields(d);
  return toPrimitive('Diagnostics', '1.0', {
    ...f,
    cpu_details: (f['cpu_details'] as Record<string, unknown>[]).map((c) => nested('CpuDiagnostics', c)),
    nic_details: (f['nic_details'] as Record<string, unknown>[]).map((c) => nested('NicDiagnostics', c)),
    disk_details: (f['disk_details'] as Record<string, unknown>[]).map((c) => nested('DiskDiagnostics', c)),
    memory_details: nested('MemoryDiagnostics', f['memory_details'] as Record<string, unknown>),
  });
}
