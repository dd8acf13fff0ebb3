// Turns the Instance a caller sent into the guest the driver addresses: the name comes from the id
// through instance_name_template (as in Nova), or from our instances row when the caller sent no id.
// The first time a uuid is seen its row is written, so later writes (faults, actions) have a parent.

import { inject, injectable } from 'inversify';
import { InstanceNotFound } from '../exception.js';
import { InstanceNameTemplate } from '../virt/instance-name.js';
import type { InstanceRef } from '../virt/driver.js';
import { ComputeSettings, ComputeStores, type ComputeSettingsShape, type ComputeStoresShape } from './tokens.js';

/** The fields of an Instance argument the resolver uses (rpc/objects parses them off the wire). */
export interface InstanceIdentity {
  uuid?: string | undefined;
  id?: number | undefined;
  displayName?: string | null | undefined;
  projectId?: string | null | undefined;
  userId?: string | null | undefined;
  vmState?: string | null | undefined;
  taskState?: string | null | undefined;
  powerState?: number | null | undefined;
  /** The Instance object as the caller sent it (NovaObject primitive), handed to the store untouched. */
  primitive?: unknown;
}

export interface ResolvedInstance extends InstanceRef {
  readonly uuid: string;
  readonly name: string;
  readonly id: number | null;
}

const CACHE_LIMIT = 10_000;

@injectable()
export class InstanceResolver {
  private readonly template: InstanceNameTemplate;
  /** uuid -> resolved guest, for uuids whose row is known to exist. */
  private readonly known = new Map<string, ResolvedInstance>();

  constructor(
    @inject(ComputeSettings) private readonly settings: ComputeSettingsShape,
    @inject(ComputeStores) private readonly stores: ComputeStoresShape,
  ) {
    this.template = new InstanceNameTemplate(settings.instanceNameTemplate);
  }

  get nameTemplate(): InstanceNameTemplate {
    return this.template;
  }

  async resolve(identity: InstanceIdentity): Promise<ResolvedInstance> {
    if (identity.uuid === undefined) return this.resolveById(identity.id);
    const cached = this.known.get(identity.uuid);
    if (cached && (identity.id === undefined || identity.id === cached.id)) {
      this.track(identity);
      return cached;
    }

    const row = await this.stores.instances.getByUuid(identity.uuid);
    let resolved: ResolvedInstance;
    if (identity.id !== undefined) {
      const name = this.template.validate(this.template.format(identity.id));
      resolved = { uuid: identity.uuid, name, id: identity.id };
      if (!row || row.name !== name) {
        await this.stores.instances.upsert({
          uuid: identity.uuid,
          id: identity.id,
          name,
          host: this.settings.host,
          node: this.settings.host,
          displayName: identity.displayName ?? null,
          projectId: identity.projectId ?? null,
          userId: identity.userId ?? null,
          vmState: identity.vmState ?? null,
          taskState: identity.taskState ?? null,
          powerState: identity.powerState ?? null,
        });
      }
    } else if (row) {
      resolved = { uuid: row.uuid, name: this.template.validate(row.name), id: row.id };
    } else {
      throw new InstanceNotFound(identity.uuid);
    }
    this.track(identity);
    this.remember(resolved);
    return resolved;
  }

  /** The caller's Instance object goes to the store last, so it is what the operation's writes build on. */
  private track(identity: InstanceIdentity): void {
    if (identity.uuid !== undefined && identity.primitive !== undefined) this.stores.instances.track(identity.uuid, identity.primitive);
  }

  /** A guest addressed by id alone: its row must exist (discovered or adopted). */
  private async resolveById(id: number | undefined): Promise<ResolvedInstance> {
    if (id === undefined) throw new InstanceNotFound('(no uuid or id)');
    const name = this.template.validate(this.template.format(id));
    const row = await this.stores.instances.getByName(name);
    if (!row) throw new InstanceNotFound(name);
    const resolved = { uuid: row.uuid, name, id };
    this.remember(resolved);
    return resolved;
  }

  /** Called when discovery or an adoption wrote a row. */
  remember(resolved: ResolvedInstance): void {
    if (this.known.size >= CACHE_LIMIT) this.known.clear();
    this.known.set(resolved.uuid, resolved);
  }
}
