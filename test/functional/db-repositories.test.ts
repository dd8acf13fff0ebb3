// The repositories against real databases: the same suite on PostgreSQL (a schema of its own) and on
// PGlite (a temp directory). Each test uses fresh uuids, so tests share one migrated database per backend.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KnexConsoleAuthTokenRepository, consoleAccessUrl } from '../../src/db/console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from '../../src/db/diagnostics-repository.js';
import { InstanceConflict } from '../../src/db/errors.js';
import { KnexInstanceActionRepository } from '../../src/db/instance-action-repository.js';
import { KnexInstanceFaultRepository } from '../../src/db/instance-fault-repository.js';
import { KnexInstanceRepository } from '../../src/db/instance-repository.js';
import { KnexMonitorAuditRepository } from '../../src/db/monitor-audit-repository.js';
import { sha256Hex } from '../../src/db/rows.js';
import { createTestDatabase, type TestDatabase } from '../../src/db/test-database.js';
import type { Diagnostics } from '../../src/virt/driver.js';

let nextId = 1000 + Math.floor(Math.random() * 1000);
function newInstance(): { uuid: string; id: number; name: string } {
  const id = nextId++;
  return { uuid: randomUUID(), id, name: `instance-${id.toString(16).padStart(8, '0')}` };
}

describe.each(['postgresql', 'pglite'] as const)('repositories on %s', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(kind);
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  describe('InstanceRepository', () => {
    it('inserts a discovered guest and finds it by uuid, name and list filters', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      const row = await repo.upsertDiscovered({ ...i, host: 'cmp1', node: 'cmp1.local', powerState: 1, vmState: 'active' });
      expect(row).toMatchObject({ ...i, host: 'cmp1', node: 'cmp1.local', powerState: 1, vmState: 'active', projectId: null, deleted: 0 });
      expect(row.createdAt).toBeInstanceOf(Date);
      expect(await repo.getByUuid(i.uuid)).toEqual(row);
      expect(await repo.getByName(i.name)).toEqual(row);
      expect(await repo.getByUuid(randomUUID())).toBeNull();

      const project = `p-${randomUUID()}`;
      await repo.adopt(i.uuid, { projectId: project, userId: 'u1', displayName: 'web' });
      const listed = await repo.list({ host: 'cmp1', projectId: project });
      expect(listed.map((r) => r.uuid)).toEqual([i.uuid]);
      expect(listed[0]).toMatchObject({ displayName: 'web', userId: 'u1' });
      expect((await repo.list({ name: `^${i.name}$` })).map((r) => r.uuid)).toEqual([i.uuid]);
      expect(await repo.list({ host: 'no-such-host' })).toEqual([]);
    });

    it('rediscovery refreshes hypervisor facts and keeps what Nova set', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      await repo.upsertDiscovered({ ...i, host: 'cmp1', node: 'n1', powerState: 1, vmState: 'active' });
      await repo.adopt(i.uuid, { projectId: 'proj', userId: 'alice', displayName: 'db' });
      const again = await repo.upsertDiscovered({ ...i, host: 'cmp2', node: 'n2', powerState: 4, vmState: 'stopped', projectId: 'other' });
      expect(again).toMatchObject({ host: 'cmp2', node: 'n2', powerState: 4, vmState: 'active', projectId: 'proj', userId: 'alice', displayName: 'db' });
      expect(again.updatedAt).toBeInstanceOf(Date);
    });

    it('upsertFromRpc inserts, then updates only the fields sent', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      const launchedAt = new Date('2024-05-01T10:00:00Z');
      const first = await repo.upsertFromRpc({ ...i, host: 'cmp1', displayName: 'vm', projectId: 'p', userId: 'u', vmState: 'active', powerState: 1, launchedAt });
      expect(first).toMatchObject({ displayName: 'vm', projectId: 'p', vmState: 'active', taskState: null });
      expect(first.launchedAt?.toISOString()).toBe(launchedAt.toISOString());
      const second = await repo.upsertFromRpc({ ...i, taskState: 'powering-off', displayName: null });
      expect(second).toMatchObject({ host: 'cmp1', projectId: 'p', vmState: 'active', taskState: 'powering-off', displayName: null });
    });

    it('refuses an id or name that belongs to another uuid', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      await repo.upsertFromRpc({ ...i, host: 'cmp1' });
      await expect(repo.upsertFromRpc({ ...i, uuid: randomUUID() })).rejects.toBeInstanceOf(InstanceConflict);
      await expect(
        repo.upsertDiscovered({ ...i, uuid: randomUUID(), id: nextId++, host: 'h', node: 'n', powerState: 1, vmState: 'active' }),
      ).rejects.toThrow(/its name already belongs/);
      // The database is still usable after the failed statement.
      expect((await repo.getByUuid(i.uuid))?.id).toBe(i.id);
    });

    it('updateStates honours the expected task state', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      await repo.upsertFromRpc({ ...i, vmState: 'active', powerState: 1, taskState: null });
      expect(await repo.updateStates(i.uuid, { taskState: 'powering-off' }, { expectedTaskState: null })).toBe(true);
      // A second stop racing the first: task_state is no longer idle.
      expect(await repo.updateStates(i.uuid, { taskState: 'powering-off' }, { expectedTaskState: null })).toBe(false);
      expect(await repo.updateStates(i.uuid, { powerState: 4, vmState: 'stopped', taskState: null }, { expectedTaskState: ['powering-off', 'pausing'] })).toBe(true);
      expect(await repo.getByUuid(i.uuid)).toMatchObject({ powerState: 4, vmState: 'stopped', taskState: null });
      expect(await repo.updateStates(i.uuid, { powerState: 1 })).toBe(true);
      expect(await repo.updateStates(randomUUID(), { powerState: 1 })).toBe(false);
    });

    it('soft delete hides the row; rediscovery revives it', async () => {
      const repo = new KnexInstanceRepository(t.db);
      const i = newInstance();
      await repo.upsertDiscovered({ ...i, host: 'cmp1', node: 'n', powerState: 1, vmState: 'active' });
      expect(await repo.softDelete(i.uuid)).toBe(true);
      expect(await repo.getByUuid(i.uuid)).toBeNull();
      expect(await repo.getByUuid(i.uuid, { includeDeleted: true })).toMatchObject({ deleted: i.id });
      expect(await repo.updateStates(i.uuid, { powerState: 4 })).toBe(false);
      await repo.upsertDiscovered({ ...i, host: 'cmp1', node: 'n', powerState: 1, vmState: 'active' });
      expect(await repo.getByUuid(i.uuid)).toMatchObject({ deleted: 0, deletedAt: null });
    });
  });

  describe('InstanceFaultRepository', () => {
    it('records faults, cuts the message to 255 characters, lists newest first', async () => {
      const repo = new KnexInstanceFaultRepository(t.db);
      const uuid = randomUUID();
      await repo.record({ instanceUuid: uuid, code: 500, message: 'first', details: 'Traceback...', host: 'cmp1' });
      const second = await repo.record({ instanceUuid: uuid, code: 409, message: 'x'.repeat(400) });
      expect(second.message).toHaveLength(255);
      const list = await repo.listForInstance(uuid);
      expect(list.map((f) => f.code)).toEqual([409, 500]);
      expect(list[1]).toMatchObject({ message: 'first', details: 'Traceback...', host: 'cmp1' });
      expect(await repo.listForInstance(uuid, { limit: 1 })).toHaveLength(1);
    });
  });

  describe('InstanceActionRepository', () => {
    it('reuses the action of a request and finishes it with its last event', async () => {
      const repo = new KnexInstanceActionRepository(t.db);
      const uuid = randomUUID();
      const requestId = `req-${randomUUID()}`;
      const actionId = await repo.start({ action: 'stop', instanceUuid: uuid, requestId, userId: 'u', projectId: 'p' });
      expect(await repo.start({ action: 'stop', instanceUuid: uuid, requestId })).toBe(actionId);

      const e1 = await repo.startEvent(actionId, 'compute_stop_instance', 'cmp1');
      const e2 = await repo.startEvent(actionId, 'compute_power_off', 'cmp1');
      await repo.finishEvent(e2, 'Success');
      let action = await repo.getByRequestId(uuid, requestId);
      expect(action?.finishTime).toBeNull();
      await repo.finishEvent(e1, 'Error', 'Traceback (most recent call last): ...');
      action = await repo.getByRequestId(uuid, requestId);
      expect(action).toMatchObject({ action: 'stop', userId: 'u', projectId: 'p', message: 'Error' });
      expect(action?.finishTime).toBeInstanceOf(Date);
      expect(action?.events.map((e) => [e.event, e.result])).toEqual([
        ['compute_stop_instance', 'Error'],
        ['compute_power_off', 'Success'],
      ]);
      expect(action?.events[0]?.traceback).toMatch(/^Traceback/);
      await expect(repo.finishEvent(2_000_000_000, 'Success')).rejects.toThrow(/does not exist/);
    });

    it('starts an action and its event in one statement, reusing the action of the same request', async () => {
      const repo = new KnexInstanceActionRepository(t.db);
      const uuid = randomUUID();
      const requestId = `req-${randomUUID()}`;
      const first = await repo.startWithEvent({ action: 'pause', instanceUuid: uuid, requestId, userId: 'u', projectId: 'p' }, 'compute_pause_instance', 'cmp1');
      const second = await repo.startWithEvent({ action: 'pause', instanceUuid: uuid, requestId }, 'compute_other', null);
      expect(second.actionId).toBe(first.actionId);
      expect(second.eventId).not.toBe(first.eventId);
      await repo.finishEvent(first.eventId, 'Success');
      await repo.finishEvent(second.eventId, 'Success');
      const action = await repo.getByRequestId(uuid, requestId);
      expect(action).toMatchObject({ id: first.actionId, action: 'pause', userId: 'u', projectId: 'p' });
      expect(action?.finishTime).toBeInstanceOf(Date);
      expect(action?.events.map((e) => [e.event, e.host, e.result])).toEqual([
        ['compute_pause_instance', 'cmp1', 'Success'],
        ['compute_other', null, 'Success'],
      ]);
    });

    it("finishes an event and the operation's last instance save together, or neither", async () => {
      const repo = new KnexInstanceActionRepository(t.db);
      const instances = new KnexInstanceRepository(t.db);
      const i = newInstance();
      await instances.upsertDiscovered({ ...i, host: 'cmp1', node: 'n1', powerState: 1, vmState: 'active' });
      const requestId = `req-${randomUUID()}`;
      const stop = await repo.startWithEvent({ action: 'stop', instanceUuid: i.uuid, requestId }, 'compute_stop_instance', 'cmp1');

      // A save the database refuses (vm_state longer than its column) takes the finish down with it.
      const refused = instances.statesUpdate(i.uuid, { vmState: 'x'.repeat(300) });
      await expect(repo.finishEvent(stop.eventId, 'Success', null, null, refused)).rejects.toThrow();
      let action = await repo.getByRequestId(i.uuid, requestId);
      expect(action?.events.map((e) => [e.result, e.finishTime])).toEqual([[null, null]]);
      expect(action?.finishTime).toBeNull();

      await repo.finishEvent(stop.eventId, 'Success', null, null, instances.statesUpdate(i.uuid, { powerState: 4, vmState: 'stopped', taskState: null }));
      action = await repo.getByRequestId(i.uuid, requestId);
      expect(action?.events.map((e) => e.result)).toEqual(['Success']);
      expect(action?.finishTime).toBeInstanceOf(Date);
      expect(await instances.getByUuid(i.uuid)).toMatchObject({ powerState: 4, vmState: 'stopped', taskState: null });
    });

    it('lists actions newest first and finds nothing for an unknown request', async () => {
      const repo = new KnexInstanceActionRepository(t.db);
      const uuid = randomUUID();
      await repo.start({ action: 'stop', instanceUuid: uuid, requestId: `req-${randomUUID()}` });
      const startId = await repo.start({ action: 'start', instanceUuid: uuid, requestId: `req-${randomUUID()}` });
      await repo.finish(startId, { message: null });
      const list = await repo.listForInstance(uuid);
      expect(list.map((a) => a.action)).toEqual(['start', 'stop']);
      expect(list[0]?.finishTime).toBeInstanceOf(Date);
      expect(await repo.getByRequestId(uuid, 'req-unknown')).toBeNull();
    });
  });

  describe('ConsoleAuthTokenRepository', () => {
    it('stores only the hash, validates until expiry, deletes expired tokens', async () => {
      const repo = new KnexConsoleAuthTokenRepository(t.db);
      const token = randomUUID();
      const instanceUuid = randomUUID();
      const now = new Date();
      const row = await repo.create({ token, consoleType: 'novnc', host: '127.0.0.1', port: 5900, internalAccessPath: null, instanceUuid, accessUrlBase: 'http://127.0.0.1:6080/vnc_auto.html', ttlSeconds: 600 }, { now });
      expect(row.tokenHash).toBe(sha256Hex(token));
      const stored = (await t.db.knex('console_auth_tokens').where({ id: row.id }).first()) as Record<string, unknown>;
      expect(Object.values(stored)).not.toContain(token);

      expect(await repo.validate(token, { now })).toMatchObject({ instanceUuid, port: 5900, consoleType: 'novnc' });
      expect(await repo.validate('not-a-token', { now })).toBeNull();
      const later = new Date(now.getTime() + 601_000);
      expect(await repo.validate(token, { now: later })).toBeNull();
      expect(consoleAccessUrl(row.accessUrlBase ?? '', row.consoleType, token)).toBe(`http://127.0.0.1:6080/vnc_auto.html?path=%3Ftoken%3D${token}`);

      const other = randomUUID();
      await repo.create({ token: other, consoleType: 'serial', host: 'h', port: 10000, instanceUuid, ttlSeconds: 3600 }, { now });
      expect(await repo.deleteExpired({ now: later })).toBeGreaterThanOrEqual(1);
      expect(await repo.validate(other, { now: later })).not.toBeNull();
      expect(await repo.deleteForInstance(instanceUuid)).toBe(1);
      expect(await repo.validate(other, { now })).toBeNull();
    });

    it('writes several tokens in one INSERT, each valid on its own, and refuses a bad one before writing', async () => {
      const repo = new KnexConsoleAuthTokenRepository(t.db);
      const instanceUuid = randomUUID();
      const tokens = [randomUUID(), randomUUID(), randomUUID()];
      await repo.createMany(tokens.map((token, i) => ({ token, consoleType: 'novnc', host: '127.0.0.1', port: 5900 + i, instanceUuid, ttlSeconds: 600 })));
      for (const [i, token] of tokens.entries()) expect(await repo.validate(token)).toMatchObject({ instanceUuid, port: 5900 + i });
      await expect(repo.createMany([{ token: randomUUID(), consoleType: 'novnc', host: 'h', port: 1, instanceUuid, ttlSeconds: 600 }, { token: '', consoleType: 'novnc', host: 'h', port: 2, instanceUuid, ttlSeconds: 600 }])).rejects.toThrow(/must not be empty/);
      expect(await repo.deleteForInstance(instanceUuid)).toBe(3);
    });

    it.runIf(kind === 'postgresql')('commits token batches asynchronously without leaving the setting on the pooled connections', async () => {
      const repo = new KnexConsoleAuthTokenRepository(t.db);
      const instanceUuid = randomUUID();
      for (let i = 0; i < 5; i++) await repo.createMany([{ token: randomUUID(), consoleType: 'novnc', host: 'h', port: 5900 + i, instanceUuid, ttlSeconds: 600 }]);
      // The tokens' own transactions ran with synchronous_commit off; every other statement keeps the default.
      for (let i = 0; i < 5; i++) {
        const shown = (await t.db.knex.raw('SHOW synchronous_commit')) as { rows: { synchronous_commit: string }[] };
        expect(shown.rows[0]?.synchronous_commit).toBe('on');
      }
      expect(await repo.deleteForInstance(instanceUuid)).toBe(5);
    });
  });

  describe('DiagnosticsRepository', () => {
    it('writes snapshots through the batcher and reads them back newest first', async () => {
      const repo = new KnexDiagnosticsRepository(t.db, { maxDelayMs: 20, maxRows: 50 });
      const uuid = randomUUID();
      const diagnostics: Diagnostics = {
        state: 'running', driver: 'libvirt', hypervisor: 'qemu', hypervisorOs: 'linux', uptime: 12, configDrive: false,
        cpuDetails: [{ id: 0, time: 1234, utilisation: null }], nicDetails: [], diskDetails: [],
        memoryDetails: { maximum: 64, used: 32 },
      } as Diagnostics;
      const base = Date.now();
      await Promise.all(
        Array.from({ length: 5 }, (_, n) =>
          repo.record({ instanceUuid: uuid, host: 'cmp1', capturedAt: new Date(base + n * 1000), diagnostics, legacy: { cpu0_time: n, memory: 65536 } }),
        ),
      );
      const latest = await repo.latest(uuid);
      expect(latest).toMatchObject({ state: 'running', host: 'cmp1', legacy: { cpu0_time: 4, memory: 65536 } });
      expect(latest?.diagnostics).toEqual(diagnostics);
      expect((await repo.listForInstance(uuid)).map((r) => r.legacy?.['cpu0_time'])).toEqual([4, 3, 2, 1, 0]);
      expect(await repo.deleteOlderThan(new Date(base + 2500))).toBeGreaterThanOrEqual(3);
      expect(await repo.listForInstance(uuid)).toHaveLength(2);
      await repo.close();
      await expect(repo.record({ instanceUuid: uuid })).rejects.toThrow(/closed/);
    });
  });

  describe('MonitorAuditRepository', () => {
    it('begin writes a pending row before the command; finish records the outcome', async () => {
      const repo = new KnexMonitorAuditRepository(t.db);
      const uuid = randomUUID();
      const id = await repo.begin({ instanceUuid: uuid, instanceName: 'instance-0000000a', host: 'cmp1', requestId: 'req-1', userId: 'admin', projectId: 'p', kind: 'qmp', command: 'query-status', arguments: { list: [1, 2] }, allowed: true });
      expect(await repo.get(id)).toMatchObject({ result: 'pending', finishedAt: null, arguments: { list: [1, 2] }, allowed: true });
      await repo.finish(id, { result: 'ok', durationMs: 3.6 });
      expect(await repo.get(id)).toMatchObject({ result: 'ok', durationMs: 4, error: null });

      const refused = await repo.record({ instanceUuid: uuid, kind: 'hmp', command: 'quit', allowed: false, result: 'refused', error: 'policy' });
      const list = await repo.listForInstance(uuid);
      expect(list.map((r) => [r.id, r.kind, r.result])).toEqual([
        [refused, 'hmp', 'refused'],
        [id, 'qmp', 'ok'],
      ]);
      await expect(repo.finish(9_000_000_000, { result: 'ok' })).rejects.toThrow(/does not exist/);
    });

    it('the database refuses an unknown kind', async () => {
      const repo = new KnexMonitorAuditRepository(t.db);
      await expect(repo.record({ kind: 'ssh' as 'qmp', command: 'x', allowed: true, result: 'ok' })).rejects.toThrow();
    });
  });

  it('ping answers and close is idempotent on a separate connection', async () => {
    await t.db.ping(5000);
  });
});
