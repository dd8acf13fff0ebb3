// instance_actions and their events: the record of each user request on an instance (action) and of
// each manager method that ran for it (event, with result and traceback), which is what
// `openstack server event list/show` shows. An action is finished when its last open event finishes.

import type { Knex } from 'knex';
import { type Database } from './knex.js';
import { dateCol, intCol, optDateCol, optStrCol, strCol, truncate, type DbRow } from './rows.js';

export type ActionEventResult = 'Success' | 'Error';

export interface ActionStart {
  /** Nova's action name: stop, start, pause, unpause, suspend, resume, reboot... */
  action: string;
  instanceUuid: string;
  requestId: string;
  userId?: string | null;
  projectId?: string | null;
}

export interface InstanceActionRow {
  id: number;
  action: string;
  instanceUuid: string;
  requestId: string;
  userId: string | null;
  projectId: string | null;
  startTime: Date;
  finishTime: Date | null;
  /** 'Error' once one of its events failed (Nova's convention), else null. */
  message: string | null;
  createdAt: Date;
  updatedAt: Date | null;
}

export interface InstanceActionEventRow {
  id: number;
  event: string;
  actionId: number;
  startTime: Date;
  finishTime: Date | null;
  result: string | null;
  traceback: string | null;
  host: string | null;
  details: string | null;
  createdAt: Date;
}

export interface InstanceActionWithEvents extends InstanceActionRow {
  events: InstanceActionEventRow[];
}

export interface InstanceActionRepository {
  /** The id of the action for (instanceUuid, requestId), creating it if this request has none yet. */
  start(input: ActionStart): Promise<number>;
  /** Starts an event (event name = the manager method, e.g. compute_stop_instance); returns its id. */
  startEvent(actionId: number, event: string, host: string | null): Promise<number>;
  /**
   * Finishes an event. An Error marks the action's message 'Error'; when no event of the action is
   * still open, the action's finish_time is set too.
   */
  finishEvent(eventId: number, result: ActionEventResult, traceback?: string | null, details?: string | null): Promise<void>;
  /** Sets the action's finish_time (and message, if given) explicitly. */
  finish(actionId: number, opts?: { message?: string | null }): Promise<void>;
  /** Newest first, without events. */
  listForInstance(instanceUuid: string): Promise<InstanceActionRow[]>;
  getByRequestId(instanceUuid: string, requestId: string): Promise<InstanceActionWithEvents | null>;
}

export function actionFromRow(row: DbRow): InstanceActionRow {
  return {
    id: intCol(row, 'id'),
    action: strCol(row, 'action'),
    instanceUuid: strCol(row, 'instance_uuid'),
    requestId: strCol(row, 'request_id'),
    userId: optStrCol(row, 'user_id'),
    projectId: optStrCol(row, 'project_id'),
    startTime: dateCol(row, 'start_time'),
    finishTime: optDateCol(row, 'finish_time'),
    message: optStrCol(row, 'message'),
    createdAt: dateCol(row, 'created_at'),
    updatedAt: optDateCol(row, 'updated_at'),
  };
}

export function actionEventFromRow(row: DbRow): InstanceActionEventRow {
  return {
    id: intCol(row, 'id'),
    event: strCol(row, 'event'),
    actionId: intCol(row, 'action_id'),
    startTime: dateCol(row, 'start_time'),
    finishTime: optDateCol(row, 'finish_time'),
    result: optStrCol(row, 'result'),
    traceback: optStrCol(row, 'traceback'),
    host: optStrCol(row, 'host'),
    details: optStrCol(row, 'details'),
    createdAt: dateCol(row, 'created_at'),
  };
}

const ACTIONS = 'instance_actions';
const EVENTS = 'instance_actions_events';

export class KnexInstanceActionRepository implements InstanceActionRepository {
  constructor(private readonly db: Database) {}

  /**
   * The action's INSERT, one statement whether or not the action exists: the unique (instance_uuid,
   * request_id) index turns a second start for the same request into an update that still returns the id.
   */
  private upsertAction(input: ActionStart) {
    const k = this.db.knex;
    return k(ACTIONS)
      .insert({
        action: input.action,
        instance_uuid: input.instanceUuid,
        request_id: input.requestId,
        user_id: input.userId ?? null,
        project_id: input.projectId ?? null,
      })
      .onConflict(['instance_uuid', 'request_id'])
      .merge({ updated_at: k.fn.now() })
      .returning('id');
  }

  async start(input: ActionStart): Promise<number> {
    const rows = (await this.upsertAction(input)) as DbRow[];
    return intCol(rows[0] as DbRow, 'id');
  }

  /**
   * start() and startEvent() in one statement: one round trip, one commit, and never an action row
   * without the event it was started for.
   */
  async startWithEvent(input: ActionStart, event: string, host: string | null): Promise<{ actionId: number; eventId: number }> {
    const k = this.db.knex;
    const action = this.upsertAction(input);
    const rows = (await k
      .with('a', action)
      .insert(k.select('a.id', k.raw('?', [event]), k.raw('?', [host])).from('a'))
      .into(k.raw('?? (action_id, event, host)', [EVENTS]))
      .returning(['id', 'action_id'])) as DbRow[];
    const row = rows[0] as DbRow;
    return { actionId: intCol(row, 'action_id'), eventId: intCol(row, 'id') };
  }

  async startEvent(actionId: number, event: string, host: string | null): Promise<number> {
    const rows = (await this.db.knex(EVENTS).insert({ action_id: actionId, event, host }).returning('id')) as DbRow[];
    return intCol(rows[0] as DbRow, 'id');
  }

  /**
   * One statement, so one commit: the event's finish, its action's message on an Error and finish_time
   * once no other event of the action is open, and `alongside` when given (a statement not yet run,
   * such as the operation's last instance save: KnexInstanceRepository.statesUpdate). They commit
   * together; an unknown event throws, after `alongside` has still been applied.
   */
  async finishEvent(
    eventId: number,
    result: ActionEventResult,
    traceback: string | null = null,
    details: string | null = null,
    alongside?: Knex.QueryBuilder,
  ): Promise<void> {
    const k = this.db.knex;
    const q = alongside ? k.with('alongside', alongside) : k.queryBuilder();
    const set: DbRow = {
      updated_at: k.fn.now(),
      // Every part of the statement sees the rows as they were before it: this event still looks open.
      finish_time: k.raw('CASE WHEN EXISTS (SELECT 1 FROM ?? o WHERE o.action_id = ??.id AND o.finish_time IS NULL AND o.id <> ?) THEN ??.finish_time ELSE now() END', [
        EVENTS,
        ACTIONS,
        eventId,
        ACTIONS,
      ]),
    };
    if (result === 'Error') set['message'] = 'Error';
    const rows = (await q
      .with('e', k(EVENTS).where({ id: eventId }).update({ finish_time: k.fn.now(), result, traceback, details, updated_at: k.fn.now() }).returning('action_id'))
      .table(ACTIONS)
      .updateFrom('e')
      .where(`${ACTIONS}.id`, k.ref('e.action_id'))
      .update(set)
      .returning(`${ACTIONS}.id`)) as DbRow[];
    if (rows.length === 0) throw new Error(`instance action event ${eventId} does not exist`);
  }

  async finish(actionId: number, opts: { message?: string | null } = {}): Promise<void> {
    const k = this.db.knex;
    const update: DbRow = { finish_time: k.fn.now(), updated_at: k.fn.now() };
    if (opts.message !== undefined) update['message'] = opts.message === null ? null : truncate(opts.message);
    await k(ACTIONS).where({ id: actionId }).update(update);
  }

  async listForInstance(instanceUuid: string): Promise<InstanceActionRow[]> {
    const rows = (await this.db
      .knex(ACTIONS)
      .where({ instance_uuid: instanceUuid })
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])) as DbRow[];
    return rows.map(actionFromRow);
  }

  async getByRequestId(instanceUuid: string, requestId: string): Promise<InstanceActionWithEvents | null> {
    const row = (await this.db.knex(ACTIONS).where({ instance_uuid: instanceUuid, request_id: requestId }).first()) as DbRow | undefined;
    if (!row) return null;
    const action = actionFromRow(row);
    const events = (await this.db
      .knex(EVENTS)
      .where({ action_id: action.id })
      .orderBy([
        { column: 'start_time', order: 'asc' },
        { column: 'id', order: 'asc' },
      ])) as DbRow[];
    return { ...action, events: events.map(actionEventFromRow) };
  }
}
