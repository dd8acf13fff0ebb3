// Instances rows this host read or wrote, with every write applied (spooled ones too): what the
// instance store answers while the database is away.

import type { InstanceRecord, InstanceStatesUpdate } from '../compute/tokens.js';

export class InstanceCache {
  private readonly byUuid = new Map<string, InstanceRecord>();
  private readonly uuidByName = new Map<string, string>();

  constructor(private readonly limit = 10_000) {}

  remember(r: InstanceRecord): InstanceRecord {
    if (this.byUuid.size >= this.limit && !this.byUuid.has(r.uuid)) {
      this.byUuid.clear();
      this.uuidByName.clear();
    }
    this.byUuid.set(r.uuid, r);
    this.uuidByName.set(r.name, r.uuid);
    return r;
  }

  /** Applies a state update to a row already held; unknown rows stay unknown. */
  patch(uuid: string, update: InstanceStatesUpdate): void {
    const r = this.byUuid.get(uuid);
    if (!r) return;
    this.byUuid.set(uuid, {
      ...r,
      ...(update.powerState === undefined ? {} : { powerState: update.powerState }),
      ...(update.vmState === undefined ? {} : { vmState: update.vmState }),
      ...(update.taskState === undefined ? {} : { taskState: update.taskState }),
    });
  }

  get(uuid: string): InstanceRecord | undefined {
    return this.byUuid.get(uuid);
  }

  getByName(name: string): InstanceRecord | undefined {
    const uuid = this.uuidByName.get(name);
    return uuid === undefined ? undefined : this.byUuid.get(uuid);
  }

  onHost(host: string): InstanceRecord[] {
    return [...this.byUuid.values()].filter((r) => r.host === host);
  }
}
