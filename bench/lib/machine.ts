// The machine a run was measured on, for the header of the table and the JSON: cores, CPU model, kernel,
// whether QEMU can use KVM or falls back to TCG, and the load when the run started.

import { accessSync, constants, readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  kernel: string;
  accel: 'KVM' | 'TCG';
  memTotalMiB: number;
  node: string;
  loadAvgAtStart: number[];
  hostname: string;
}

export function machineInfo(): MachineInfo {
  let accel: 'KVM' | 'TCG';
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    accel = 'KVM';
  } catch {
    accel = 'TCG';
  }
  let kernel = os.release();
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    /* os.release() is the same figure */
  }
  return {
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    kernel,
    accel,
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    node: process.version,
    loadAvgAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    hostname: os.hostname(),
  };
}
