// Nova's power_state codes and the mapping from QEMU run states to them (mirrors libvirt's mapping).

export const PowerState = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
export type PowerState = (typeof PowerState)[keyof typeof PowerState];

const powerStateNames: Record<PowerState, string> = {
  0: 'pending',
  1: 'running',
  3: 'paused',
  4: 'shutdown',
  6: 'crashed',
  7: 'suspended',
};

/** Diagnostics.state string for a power state (Nova's enum: pending, running, paused, shutdown, crashed, suspended). */
export function powerStateName(state: PowerState): string {
  return powerStateNames[state];
}

const qemuStatusToPowerState: Record<string, PowerState> = {
  running: PowerState.RUNNING,
  paused: PowerState.PAUSED,
  debug: PowerState.PAUSED,
  prelaunch: PowerState.PAUSED,
  inmigrate: PowerState.PAUSED,
  postmigrate: PowerState.PAUSED,
  'finish-migrate': PowerState.PAUSED,
  'save-vm': PowerState.PAUSED,
  'restore-vm': PowerState.PAUSED,
  'io-error': PowerState.PAUSED,
  watchdog: PowerState.PAUSED,
  colo: PowerState.PAUSED,
  shutdown: PowerState.SHUTDOWN,
  'internal-error': PowerState.CRASHED,
  'guest-panicked': PowerState.CRASHED,
  suspended: PowerState.SUSPENDED,
};

/** Maps a QMP `query-status` status to Nova's power state; unknown statuses are NOSTATE. */
export function powerStateFromQemuStatus(status: string): PowerState {
  return qemuStatusToPowerState[status] ?? PowerState.NOSTATE;
}
