// The instances table: novamon's copy of what Nova knows about the instances on this host, fed by
// instances arriving over RPC and by guests discovered on the hypervisor. Rows are camelCase here,
// snake_case (Nova's column names) in the database.

import type { Knex } from 'knex';
import { InstanceConflict, isUniqueViolation } from './errors.js';
import { searchInstances, type InstanceSearch } from './instance-search.js';
import { type Database } from './knex.js';
import { dateCol, intCol, optDateCol, optIntCol, optStrCol, strCol, toColumns, type DbRow } from './rows.js';

export interface InstanceRow {
  id: number;
  uuid: string;
  /** The hypervisor's name for the guest (instance_name_template % id). */
  name: string;
  host: string | null;
  node: string | null;
  hostname: string | null;
  displayName: string | null;
  vmState: string | null;
  taskState: string | null;
  powerState: number | null;
  launchedAt: Date | null;
  terminatedAt: Date | null;
  projectId: string | null;
  userId: string | null;
  createdAt: Date;
  updatedAt: Date | null;
  deletedAt: Date | null;
  /** 0 while the instance exists; Nova's soft-delete marker otherwise. */
  deleted: number;
}

export interface InstanceListFilter {
  host?: string;
  projectId?: string;
  /** PostgreSQL regular expression (`~`) matched against the hypervisor name. */
  name?: string;
  includeDeleted?: boolean;
}

export interface DiscoveredInstanceInput {
  uuid: string;
  name: string;
  id: number;
  host: string;
  node: string;
  powerState: number;
  vmState: string;
  projectId?: string | null;
  userId?: string | null;
  displayName?: string | null;
}

/** Fields of a Nova Instance object that arrived over RPC; undefined = not sent (left as stored). */
export interface RpcInstanceInput {
  uuid: string;
  id: number;
  name: string;
  host?: string | null;
  node?: string | null;
  hostname?: string | null;
  displayName?: string | null;
  vmState?: string | null;
  taskState?: string | null;
  powerState?: number | null;
  launchedAt?: Date | null;
  terminatedAt?: Date | null;
  projectId?: string | null;
  userId?: string | null;
}

export interface StateUpdate {
  powerState?: number | null;
  vmState?: string | null;
  taskState?: string | null;
}

export interface StateUpdateGuard {
  /** Change the row only if its task_state is this (null = idle), or one of these. */
  expectedTaskState?: string | null | ReadonlyArray<string | null>;
}

export interface InstanceRepository {
  getByUuid(uuid: string, opts?: { includeDeleted?: boolean }): Promise<InstanceRow | null>;
  getByName(name: string, opts?: { includeDeleted?: boolean }): Promise<InstanceRow | null>;
  list(filter?: InstanceListFilter): Promise<InstanceRow[]>;
  /** One page of the server list, filtered, sorted and paged by the database (see instance-search.ts). */
  search(s: InstanceSearch): Promise<InstanceRow[]>;
  /**
   * Inserts a guest found on the hypervisor, or refreshes its row. On update the hypervisor's facts
   * (id, name, host, node, power_state) win; Nova's (vm_state, project, user, display name) are only
   * filled where the row has none. A soft-deleted row that is found running again is revived.
   */
  upsertDiscovered(input: DiscoveredInstanceInput): Promise<InstanceRow>;
  /** Inserts or updates from an Instance that came over RPC; Nova's values win for every field sent. */
  upsertFromRpc(input: RpcInstanceInput): Promise<InstanceRow>;
  /** Returns true when a row changed (false: unknown uuid, or task_state not the expected one). */
  updateStates(uuid: string, states: StateUpdate, guard?: StateUpdateGuard): Promise<boolean>;
  /** Gives a discovered guest its owner; true when the row exists. */
  adopt(uuid: string, owner: { projectId: string; userId: string; displayName: string }): Promise<boolean>;
  /** Nova's soft delete: deleted = id, deleted_at = now. True when a live row was deleted. */
  softDelete(uuid: string): Promise<boolean>;
}

export function instanceFromRow(row: DbRow): InstanceRow {
  return {
    id: intCol(row, 'id'),
    uuid: strCol(row, 'uuid'),
    name: strCol(row, 'name'),
    host: optStrCol(row, 'host'),
    node: optStrCol(row, 'node'),
    hostname: optStrCol(row, 'hostname'),
    displayName: optStrCol(row, 'display_name'),
    vmState: optStrCol(row, 'vm_state'),
    taskState: optStrCol(row, 'task_state'),
    powerState: optIntCol(row, 'power_state'),
    launchedAt: optDateCol(row, 'launched_at'),
    terminatedAt: optDateCol(row, 'terminated_at'),
    projectId: optStrCol(row, 'project_id'),
    userId: optStrCol(row, 'user_id'),
    createdAt: dateCol(row, 'created_at'),
    updatedAt: optDateCol(row, 'updated_at'),
    deletedAt: optDateCol(row, 'deleted_at'),
    deleted: intCol(row, 'deleted'),
  };
}

const TABLE = 'instances';

export class KnexInstanceRepository implements InstanceRepository {
  constructor(private readonly db: Database) {}

  async getByUuid(uuid: string, opts: { includeDeleted?: boolean } = {}): Promise<InstanceRow | null> {
    const q = this.db.knex(TABLE).where({ uuid });
    if (!opts.includeDeleted) q.andWhere({ deleted: 0 });
    const row = (await q.first()) as DbRow | undefined;
    return row ? instanceFromRow(row) : null;
  }

  async getByName(name: string, opts: { includeDeleted?: boolean } = {}): Promise<InstanceRow | null> {
    const q = this.db.knex(TABLE).where({ name });
    if (!opts.includeDeleted) q.andWhere({ deleted: 0 });
    const row = (await q.first()) as DbRow | undefined;
    return row ? instanceFromRow(row) : null;
  }

  async list(filter: InstanceListFilter = {}): Promise<InstanceRow[]> {
    const q = this.db.knex(TABLE).select('*').orderBy('id');
    if (!filter.includeDeleted) q.where({ deleted: 0 });
    if (filter.host !== undefined) q.andWhere({ host: filter.host });
    if (filter.projectId !== undefined) q.andWhere({ project_id: filter.projectId });
    if (filter.name !== undefined) q.andWhere('name', '~', filter.name);
    return ((await q) as DbRow[]).map(instanceFromRow);
  }

  search(s: InstanceSearch): Promise<InstanceRow[]> {
    return searchInstances(this.db, s);
  }

  async upsertDiscovered(input: DiscoveredInstanceInput): Promise<InstanceRow> {
    const k = this.db.knex;
    const insert = toColumns({
      id: input.id,
      uuid: input.uuid,
      name: input.name,
      host: input.host,
      node: input.node,
      powerState: input.powerState,
      vmState: input.vmState,
      projectId: input.projectId ?? null,
      userId: input.userId ?? null,
      displayName: input.displayName ?? null,
    });
    const keepUnlessNull = (col: string) => k.raw(`coalesce(??.??, excluded.??)`, [TABLE, col, col]);
    const query = k(TABLE)
      .insert(insert)
      .onConflict('uuid')
      .merge({
        id: k.raw('excluded.id'),
        name: k.raw('excluded.name'),
        host: k.raw('excluded.host'),
        node: k.raw('excluded.node'),
        power_state: k.raw('excluded.power_state'),
        vm_state: keepUnlessNull('vm_state'),
        project_id: keepUnlessNull('project_id'),
        user_id: keepUnlessNull('user_id'),
        display_name: keepUnlessNull('display_name'),
        deleted: 0,
        deleted_at: null,
        updated_at: k.fn.now(),
      })
      .returning('*');
    return this.returningOne(query, input.uuid);
  }

  async upsertFromRpc(input: RpcInstanceInput): Promise<InstanceRow> {
    const k = this.db.knex;
    const { uuid, id, name, ...rest } = input;
    const sent = toColumns(rest);
    const merge: DbRow = { id, name, updated_at: k.fn.now() };
    for (const col of Object.keys(sent)) merge[col] = k.raw('excluded.??', [col]);
    const query = k(TABLE)
      .insert({ uuid, id, name, ...sent })
      .onConflict('uuid')
      .merge(merge)
      .returning('*');
    return this.returningOne(query, uuid);
  }

  async updateStates(uuid: string, states: StateUpdate, guard: StateUpdateGuard = {}): Promise<boolean> {
    const q = this.statesUpdate(uuid, states);
    if (guard.expectedTaskState !== undefined) {
      const expected: ReadonlyArray<string | null> = Array.isArray(guard.expectedTaskState)
        ? guard.expectedTaskState
        : [guard.expectedTaskState as string | null];
      const values = expected.filter((s): s is string => s !== null);
      const allowIdle = expected.includes(null);
      q.andWhere((w) => {
        if (values.length > 0) w.orWhereIn('task_state', values);
        if (allowIdle) w.orWhereNull('task_state');
        if (values.length === 0 && !allowIdle) w.whereRaw('false');
      });
    }
    const changed = (await q) as number;
    return changed > 0;
  }

  /**
   * updateStates' statement, not yet run (no guard): for a caller that writes it together with another
   * row in one statement (an action event's finish, KnexInstanceActionRepository.finishEvent).
   */
  statesUpdate(uuid: string, states: StateUpdate): Knex.QueryBuilder {
    return this.db
      .knex(TABLE)
      .where({ uuid, deleted: 0 })
      .update({ ...toColumns({ ...states }), updated_at: this.db.knex.fn.now() });
  }

  async adopt(uuid: string, owner: { projectId: string; userId: string; displayName: string }): Promise<boolean> {
    const changed = await this.db
      .knex(TABLE)
      .where({ uuid, deleted: 0 })
      .update({ ...toColumns(owner), updated_at: this.db.knex.fn.now() });
    return changed > 0;
  }

  async softDelete(uuid: string): Promise<boolean> {
    const k = this.db.knex;
    const changed = await k(TABLE)
      .where({ uuid, deleted: 0 })
      .update({ deleted: k.ref('id'), deleted_at: k.fn.now(), updated_at: k.fn.now() });
    return changed > 0;
  }

  /** Runs an INSERT ... RETURNING and maps a unique violation on id or name to InstanceConflict. */
  private async returningOne(query: PromiseLike<unknown>, uuid: string): Promise<InstanceRow> {
    try {
      const rows = (await query) as DbRow[];
      const row = rows[0];
      if (!row) throw new Error(`upsert of instance ${uuid} returned no row`);
      return instanceFromRow(row);
    } catch (err) {
      if (isUniqueViolation(err)) {
        const constraint = err.constraint ?? '';
        const what = constraint.includes('name') ? 'its name' : constraint.includes('pkey') ? 'its id' : (err.message ?? 'a unique key');
        throw new InstanceConflict(uuid, `${what} already belongs to another instance`, { cause: err });
      }
      throw err;
    }
  }
}
