// novamon-manage's commands: database schema, instances, monitor commands and RPC calls. Each command
// parses its arguments, asks a service from the composition root for the work, and prints the answer.

import { Command, Option } from 'commander';
import { renderSample } from '../config/loader.js';
import type { RequestContext } from '../context.js';
import type { MonitorCommand, Screenshot } from '../virt/driver.js';
import { screenshotCommand } from './screenshot.js';
import { attachSerialConsole } from './serial-console.js';
import { parseMonitorCommand } from '../rpc/endpoints/compute.js';

/** What the commands need; built lazily by src/main/manage.ts so `--help` touches nothing. */
export interface ManageServices {
  dbSync(): Promise<unknown>;
  dbVersion(): Promise<unknown>;
  dbPurge(opts: PurgeOptions): Promise<unknown>;
  listInstances(opts: { allHosts: boolean }): Promise<unknown[]>;
  showInstance(ref: string): Promise<unknown>;
  adoptInstance(ref: string, owner: { projectId: string; userId: string; displayName?: string | undefined }): Promise<unknown>;
  instanceActions(ref: string): Promise<unknown>;
  instanceFaults(ref: string): Promise<unknown>;
  /** The guest's memory dumps taken after panics ([qemu] panic_dump), read from the filesystem. */
  instanceDumps(name: string): Promise<unknown>;
  monitorCommandDirect(name: string, command: MonitorCommand): Promise<unknown>;
  screenshotDirect(name: string): Promise<Screenshot>;
  rpcCall(req: RpcRequest): Promise<unknown>;
  close(): Promise<void>;
}

/** `db purge`: what to drop besides the expired console tokens. */
export interface PurgeOptions {
  /** Diagnostics snapshots captured before this go; null = `[database] diagnostics_retention_hours` ago. */
  before: Date | null;
  /** Every host's snapshots, not only this host's. */
  allHosts: boolean;
}

/** `--before`: an ISO 8601 date or date-time (a bare date is midnight UTC). */
export function parseBefore(text: string): Date {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    throw new Error(`--before ${text}: expected an ISO 8601 date such as 2026-11-30 or 2026-11-30T12:00:00Z`);
  }
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new Error(`--before ${text}: not a valid date`);
  return d;
}

export interface RpcRequest {
  method: string;
  instance: string | undefined;
  args: Record<string, unknown>;
  cast: boolean;
  server: string | undefined;
  version: string;
  timeoutSeconds: number;
  context: Partial<RequestContext>;
  /** oslo target namespace (null: Nova's compute API; `novamon` for novamon's own methods). */
  namespace?: string;
}

/** `--arg k=v`: v is JSON when it parses as JSON (numbers, true, null, objects), else a string. */
export function parseArg(pair: string, acc: Record<string, unknown>): Record<string, unknown> {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new Error(`--arg ${pair}: expected key=value`);
  const key = pair.slice(0, eq);
  const raw = pair.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // Not JSON: keep the text.
  }
  return { ...acc, [key]: value };
}

function print(value: unknown): void {
  process.stdout.write(typeof value === 'string' ? (value.endsWith('\n') ? value : `${value}\n`) : `${JSON.stringify(value, null, 2)}\n`);
}

type Runner = (fn: (s: ManageServices) => Promise<unknown>) => () => Promise<void>;

/** A command's action: services built on first use, the result printed, everything closed afterwards. */
function runner(services: () => ManageServices): Runner {
  return (fn) => async () => {
    const s = services();
    try {
      const out = await fn(s);
      if (out !== undefined) print(out);
    } finally {
      await s.close();
    }
  };
}

function addDatabaseAndInstanceCommands(program: Command, run: Runner): void {
  const db = program.command('db').description('database schema');
  db.command('sync').description('create or upgrade the schema').action(run((s) => s.dbSync()));
  db.command('version').description('print the schema version').action(run((s) => s.dbVersion()));
  db
    .command('purge')
    .description(
      'delete expired console tokens and diagnostics snapshots past [database] diagnostics_retention_hours ' +
        '(what novamon-compute does every instance_delete_interval), now',
    )
    .option('--before <date>', 'drop the snapshots captured before this ISO 8601 date instead')
    .option('--all-hosts', 'drop every host\'s snapshots, not only this host\'s')
    .action((opts: { before?: string; allHosts?: boolean }) =>
      run((s) => s.dbPurge({ before: opts.before === undefined ? null : parseBefore(opts.before), allHosts: opts.allHosts === true }))(),
    );

  const instance = program.command('instance').description('instances in the database');
  instance
    .command('list')
    .description('instances of this host')
    .option('--all-hosts', 'instances of every host')
    .action((opts: { allHosts?: boolean }) => run((s) => s.listInstances({ allHosts: opts.allHosts === true }))());
  instance.command('show <ref>').description('one instance by name or uuid').action((ref: string) => run((s) => s.showInstance(ref))());
  instance.command('actions <ref>').description('instance actions and their events').action((ref: string) => run((s) => s.instanceActions(ref))());
  instance.command('faults <ref>').description('instance faults, newest first').action((ref: string) => run((s) => s.instanceFaults(ref))());
  instance
    .command('dumps <name>')
    .description('memory dumps taken when the guest panicked ([qemu] panic_dump), oldest first')
    .action((name: string) => run((s) => s.instanceDumps(name))());
  instance
    .command('adopt <ref>')
    .description('give a discovered guest an owner and the name API clients will use')
    .requiredOption('--project <id>', 'owning project id')
    .requiredOption('--user <id>', 'owning user id')
    .option('--display-name <name>', 'server name shown by the API')
    .action((ref: string, opts: { project: string; user: string; displayName?: string }) =>
      run((s) => s.adoptInstance(ref, { projectId: opts.project, userId: opts.user, displayName: opts.displayName }))(),
    );
  instance.addCommand(screenshotCommand(run));
}

function addMonitorCommand(program: Command, run: Runner): void {
  program
    .command('monitor-command <instance> <command>')
    .description('run a QMP command (JSON) or, with --hmp, an HMP command line on a guest\'s monitor, like virsh qemu-monitor-command')
    .option('--hmp', 'the command is an HMP command line')
    .option('--rpc', 'send it through the novamon-compute service that holds the monitor (monitor_command RPC)')
    .option('--server <host>', 'compute host for --rpc (default: [DEFAULT] host)')
    .action((name: string, text: string, opts: { hmp?: boolean; rpc?: boolean; server?: string }) =>
      run(async (s) => {
        const command = parseMonitorCommand(text, opts.hmp === true);
        if (opts.rpc) {
          return s.rpcCall({
            method: 'monitor_command',
            instance: name,
            args: { command: text, hmp: opts.hmp === true },
            cast: false,
            server: opts.server,
            version: '6.0',
            timeoutSeconds: 30,
            context: { isAdmin: true, roles: ['admin'] },
          });
        }
        return s.monitorCommandDirect(name, command);
      })(),
    );
}

function addRpcCommand(program: Command, run: Runner): void {
  const rpc = program.command('rpc').description('compute RPC, in oslo.messaging\'s wire format');
  rpc
    .command('call <method>')
    .description('call (or --cast) a compute RPC method and print the result')
    .option('--instance <ref>', 'instance name or uuid (sent as the instance argument)')
    .option('--arg <key=value>', 'another argument (repeatable; JSON values allowed)', parseArg, {} as Record<string, unknown>)
    .option('--cast', 'cast: no reply expected')
    .option('--server <host>', 'compute host (default: [DEFAULT] host)')
    .addOption(new Option('--version <v>', 'requested RPC API version').default('6.0'))
    .option('--timeout <seconds>', 'reply timeout', (v: string) => Number(v), 60)
    .option('--user <id>', 'request context user id', 'admin')
    .option('--project <id>', 'request context project id', 'admin')
    .option('--no-admin', 'send a non-admin context')
    .action(
      (
        method: string,
        opts: { instance?: string; arg: Record<string, unknown>; cast?: boolean; server?: string; version: string; timeout: number; user: string; project: string; admin: boolean },
      ) =>
        run((s) =>
          s.rpcCall({
            method,
            instance: opts.instance,
            args: opts.arg,
            cast: opts.cast === true,
            server: opts.server,
            version: opts.version,
            timeoutSeconds: opts.timeout,
            context: { userId: opts.user, projectId: opts.project, isAdmin: opts.admin, roles: opts.admin ? ['admin', 'member'] : ['member'] },
          }),
        )(),
    );
}

function addConsoleCommand(program: Command, run: Runner): void {
  program
    .command('console <instance>')
    .description('a terminal on the guest\'s serial console through the serial console proxy, like virsh console (Ctrl-] leaves)')
    .option('--server <host>', 'compute host (default: [DEFAULT] host)')
    .option('--url <ws-url>', 'a serial console URL already handed out (get_serial_console is not asked)')
    .action((instance: string, opts: { server?: string; url?: string }) =>
      run(async (s) => {
        let url = opts.url;
        if (url === undefined) {
          const info = (await s.rpcCall({
            method: 'get_serial_console',
            instance,
            args: { console_type: 'serial' },
            cast: false,
            server: opts.server,
            version: '6.0',
            timeoutSeconds: 60,
            context: { isAdmin: true, roles: ['admin'] },
          })) as { access_url?: unknown } | null;
          if (typeof info?.access_url !== 'string') throw new Error('get_serial_console returned no access_url');
          url = info.access_url;
        }
        await attachSerialConsole(url, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }, instance);
        return undefined;
      })(),
    );
}

export function buildManageProgram(services: () => ManageServices): Command {
  const program = new Command('novamon-manage')
    .description('Manage novamon: database, instances, monitor commands, RPC calls')
    .option('--config-file <path>', 'configuration file (repeatable; later files win)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .showHelpAfterError()
    .exitOverride();

  const run = runner(services);
  addDatabaseAndInstanceCommands(program, run);
  addMonitorCommand(program, run);
  addRpcCommand(program, run);
  addConsoleCommand(program, run);

  program
    .command('config-sample')
    .description('print a sample configuration with every option and its default')
    .action(() => print(renderSample()));

  return program;
}
