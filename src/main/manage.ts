// novamon-manage's composition root: builds, on first use, only what the chosen command needs
// (database, driver, RPC client), and closes it afterwards.

import 'reflect-metadata';
import { CommanderError } from 'commander';
import { z } from 'zod';
import { buildManageProgram, type ManageServices, type PurgeOptions, type RpcRequest } from '../cli/manage.js';
import { ConfigError } from '../config/loader.js';
import type { Config } from '../config/options.js';
import { adminContext } from '../context.js';
import { NovaException, InstanceNotFound } from '../exception.js';
import type { Database } from '../db/knex.js';
import { syncSchema, schemaVersion } from '../db/migrate.js';
import { KnexInstanceRepository, type InstanceRow } from '../db/instance-repository.js';
import { KnexMonitorAuditRepository } from '../db/monitor-audit-repository.js';
import { KnexConsoleAuthTokenRepository } from '../db/console-auth-token-repository.js';
import { KnexDiagnosticsRepository } from '../db/diagnostics-repository.js';
import { createDatabase } from '../db/knex.js';
import { DatabaseLocked } from '../db/errors.js';
import { createLogger, type Logger } from '../logging.js';
import type { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import type { RpcClient } from '../rpc/client.js';
import { RemoteError } from '../rpc/failure.js';
import { NOVAMON_RPC_NAMESPACE, NOVAMON_RPC_VERSION } from '../rpc/endpoints/novamon.js';
import { instancePrimitive } from '../rpc/objects/instance.js';
import type { ComputeDriver, MonitorCommand } from '../virt/driver.js';
import { InstanceNameTemplate } from '../virt/instance-name.js';
import { dumpsDir, listDumps } from '../virt/qemu/panic-dump.js';
import { configFilesFromArgv, loadServiceConfig, openDatabase } from './bootstrap.js';
import { createDriver, qemuStateDir } from './drivers.js';
import { databaseRecords } from './manage-records.js';
import { amqpConnection, rpcClient } from './service.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const serviceRows = z.array(z.record(z.string(), z.unknown()));

/** The embedded database is held by another process and manage cannot do the command without it. */
class EmbeddedDatabaseBusy extends Error {
  override readonly name = 'DatabaseLocked';
}

/** A write refused while a running service holds the embedded database: say why and what to do. */
function refuseWrite(command: string, err: unknown): never {
  if (!(err instanceof DatabaseLocked)) throw err;
  throw new EmbeddedDatabaseBusy(
    `${command} writes the database, and the embedded database ${err.dataDir} is held by process ${err.pid} ` +
      '(a running novamon-compute): stop the service first, or point [database] connection at PostgreSQL to share it',
  );
}

class LazyManageServices implements ManageServices {
  private db: Database | null = null;
  private driver: ComputeDriver | null = null;
  private connection: AmqpConnectionManager | null = null;
  private client: RpcClient | null = null;
  private readonly template: InstanceNameTemplate;
  private locked: DatabaseLocked | null = null;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {
    this.template = new InstanceNameTemplate(config.DEFAULT.instance_name_template);
  }

  private async database(): Promise<Database> {
    // db sync is how the schema gets there: manage never refuses a missing or old one.
    this.db ??= await openDatabase(this.config, this.logger, { requireSchema: false });
    return this.db;
  }

  /** The database, or null when a running service holds the embedded one (reads then ask it over RPC). */
  private async readableDatabase(): Promise<Database | null> {
    try {
      return await this.database();
    } catch (err) {
      if (!(err instanceof DatabaseLocked)) throw err;
      this.locked = err;
      return null;
    }
  }

  /** A read in novamon's namespace, answered by the service on this host that holds the embedded database. */
  private async askService(method: string, args: Record<string, unknown>, instance?: string): Promise<unknown> {
    const locked = this.locked as DatabaseLocked;
    const timeout = this.config.DEFAULT.rpc_response_timeout;
    process.stderr.write(`novamon-manage: the embedded database is held by process ${locked.pid}; asking the running novamon-compute over RPC\n`);
    try {
      return await this.rpcCall({
        method,
        instance,
        args,
        cast: false,
        server: undefined,
        version: NOVAMON_RPC_VERSION,
        namespace: NOVAMON_RPC_NAMESPACE,
        timeoutSeconds: timeout,
        context: { isAdmin: true, roles: ['admin'] },
      });
    } catch (err) {
      if (err instanceof RemoteError || err instanceof NovaException) throw err;
      throw new EmbeddedDatabaseBusy(
        `the embedded database ${locked.dataDir} is held by a running novamon-compute (process ${locked.pid}) that did not answer ` +
          `over RPC within ${timeout} s (${(err as Error).message}); stop it, or point [database] connection at PostgreSQL`,
      );
    }
  }

  private async rowsFromService(allHosts: boolean): Promise<Array<Record<string, unknown>>> {
    return serviceRows.parse(await this.askService('list_instances', { all_hosts: allHosts }));
  }

  private async instanceRow(ref: string): Promise<InstanceRow> {
    const repo = new KnexInstanceRepository(await this.database());
    const row = UUID.test(ref) ? await repo.getByUuid(ref.toLowerCase()) : await repo.getByName(this.template.validate(ref));
    if (!row) throw new InstanceNotFound(ref);
    return row;
  }

  async dbSync() {
    const db = await createDatabase({ connection: this.config.database.connection, statePath: this.config.DEFAULT.state_path, poolSize: 1, logger: this.logger }).catch((err: unknown) => refuseWrite('db sync', err));
    this.db = db;
    return syncSchema(db);
  }

  async dbVersion() {
    const db = await this.readableDatabase();
    return db ? schemaVersion(db) : this.askService('db_version', {});
  }

  /** Housekeeping on demand, in novamon's own database (a Nova cloud's tokens live in Nova's). */
  async dbPurge(opts: PurgeOptions) {
    const db = await this.database().catch((err: unknown) => refuseWrite('db purge', err));
    const hours = this.config.database.diagnostics_retention_hours;
    const before = opts.before ?? (hours > 0 ? new Date(Date.now() - hours * 3_600_000) : null);
    const expiredTokens = await new KnexConsoleAuthTokenRepository(db).deleteExpired();
    const snapshots = new KnexDiagnosticsRepository(db);
    try {
      const diagnosticsDropped = before === null ? 0 : await snapshots.deleteOlderThan(before, opts.allHosts ? {} : { host: this.config.DEFAULT.host });
      return { expiredTokens, diagnosticsDropped, diagnosticsBefore: before?.toISOString() ?? null, hosts: opts.allHosts ? 'all' : this.config.DEFAULT.host };
    } finally {
      await snapshots.close();
    }
  }

  async listInstances(opts: { allHosts: boolean }) {
    const db = await this.readableDatabase();
    if (!db) return this.rowsFromService(opts.allHosts);
    return new KnexInstanceRepository(db).list(opts.allHosts ? {} : { host: this.config.DEFAULT.host });
  }

  async showInstance(ref: string) {
    if (await this.readableDatabase()) return this.instanceRow(ref);
    const uuid = UUID.test(ref) ? ref.toLowerCase() : null;
    const name = uuid === null ? this.template.validate(ref) : null;
    const row = (await this.rowsFromService(true)).find((r) => (uuid !== null ? r['uuid'] === uuid : r['name'] === name));
    if (!row) throw new InstanceNotFound(ref);
    return row;
  }

  async adoptInstance(ref: string, owner: { projectId: string; userId: string; displayName?: string | undefined }) {
    await this.database().catch((err: unknown) => refuseWrite('instance adopt', err));
    const row = await this.instanceRow(ref);
    const repo = new KnexInstanceRepository(await this.database());
    await repo.adopt(row.uuid, { projectId: owner.projectId, userId: owner.userId, displayName: owner.displayName ?? row.displayName ?? row.name });
    return repo.getByUuid(row.uuid);
  }

  async instanceActions(ref: string) {
    const db = await this.readableDatabase();
    if (!db) return this.askService('instance_actions', {}, ref);
    return databaseRecords(db).instanceActions((await this.instanceRow(ref)).uuid);
  }

  async instanceFaults(ref: string) {
    const db = await this.readableDatabase();
    if (!db) return this.askService('instance_faults', {}, ref);
    return databaseRecords(db).instanceFaults((await this.instanceRow(ref)).uuid);
  }

  /** Files only (no database, no service): works while novamon-compute runs. */
  async instanceDumps(name: string) {
    const validName = this.template.validate(name);
    return listDumps(dumpsDir(qemuStateDir(this.config), validName));
  }

  /**
   * Straight to the guest's monitor socket, audited like the RPC path. QEMU serves one client per
   * monitor: while novamon-compute holds it, use --rpc.
   */
  async monitorCommandDirect(name: string, command: MonitorCommand) {
    const validName = this.template.validate(name);
    const audit = new KnexMonitorAuditRepository(await this.database());
    const ctx = adminContext();
    const auditId = await audit.begin({
      instanceName: validName,
      host: this.config.DEFAULT.host,
      userId: process.env['USER'] ?? 'root',
      kind: command.kind,
      command: command.kind === 'qmp' ? command.execute : command.commandLine,
      arguments: command.kind === 'qmp' ? (command.arguments ?? null) : null,
      allowed: ctx.isAdmin,
    });
    const started = performance.now();
    this.driver ??= await createDriver(this.config, this.logger);
    try {
      const result = await this.driver.monitorCommand({ name: validName }, command);
      await audit.finish(auditId, { result: 'ok', durationMs: performance.now() - started });
      return result;
    } catch (err) {
      await audit.finish(auditId, { result: 'error', error: (err as Error).message, durationMs: performance.now() - started });
      throw err;
    }
  }

  /** The guest's screen straight from its monitor socket, audited like monitorCommandDirect. */
  async screenshotDirect(name: string) {
    const validName = this.template.validate(name);
    const audit = new KnexMonitorAuditRepository(await this.database());
    const auditId = await audit.begin({
      instanceName: validName,
      host: this.config.DEFAULT.host,
      userId: process.env['USER'] ?? 'root',
      kind: 'qmp',
      command: 'screendump',
      arguments: null,
      allowed: true,
    });
    const started = performance.now();
    this.driver ??= await createDriver(this.config, this.logger);
    try {
      const shot = await this.driver.screenshot({ name: validName });
      await audit.finish(auditId, { result: 'ok', durationMs: performance.now() - started });
      return shot;
    } catch (err) {
      await audit.finish(auditId, { result: 'error', error: (err as Error).message, durationMs: performance.now() - started });
      throw err;
    }
  }

  async rpcCall(req: RpcRequest) {
    this.connection ??= amqpConnection(this.config, this.logger, 'novamon-manage');
    await this.connection.connect(10_000);
    this.client ??= rpcClient(this.config, this.connection, this.logger, req.timeoutSeconds);
    const server = req.server ?? this.config.DEFAULT.host;
    const args: Record<string, unknown> = { ...req.args };
    if (req.instance !== undefined) {
      // Addressed as a Nova controller would: by uuid, or by the id the name was formatted from.
      if (UUID.test(req.instance)) args['instance'] = instancePrimitive({ uuid: req.instance.toLowerCase(), host: server });
      else {
        const id = this.template.parseId(this.template.validate(req.instance));
        if (id === null) throw new InstanceNotFound(req.instance);
        args['instance'] = instancePrimitive({ id, host: server });
      }
    }
    const target = { topic: 'compute', server, version: req.version, ...(req.namespace ? { namespace: req.namespace } : {}) };
    const ctx = { requestId: `req-${crypto.randomUUID()}`, ...req.context };
    if (req.cast) {
      await this.client.cast(target, ctx, req.method, args);
      return { cast: req.method, server, request_id: ctx.requestId };
    }
    return this.client.call(target, ctx, req.method, args, { timeoutMs: req.timeoutSeconds * 1000 });
  }

  async close(): Promise<void> {
    await this.client?.close();
    await this.connection?.close();
    await this.driver?.close();
    await this.db?.close();
  }
}

async function main(argv: string[]): Promise<number> {
  let services: LazyManageServices | null = null;
  const program = buildManageProgram(() => {
    if (!services) {
      const config = loadServiceConfig(configFilesFromArgv(argv), process.env);
      // A command-line tool: its output is the answer; log lines only for warnings (or with debug).
      const logger = createLogger({ debug: config.DEFAULT.debug, format: 'pretty', name: 'novamon-manage', defaultLevel: 'warn' });
      services = new LazyManageServices(config, logger.child({ component: 'manage' }));
    }
    return services;
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`novamon-manage: ${describe(err)}\n`);
    return 1;
  }
}

function describe(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof NovaException) return `${err.className}: ${err.message}`;
  if (err instanceof RemoteError) return `${err.excType}: ${err.value}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

const code = await main(process.argv);
process.exitCode = code;
// Anything still holding the event loop (a broker connection closing slowly) must not hold the CLI.
setTimeout(() => process.exit(code), 3000).unref();
