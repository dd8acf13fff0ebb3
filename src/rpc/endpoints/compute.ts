// The compute RPC endpoint: Nova's wire method and argument names, validated at the edge, translated
// to ComputeManager calls, and results turned back into what Nova's rpcapi expects (strings, dicts,
// NovaObject primitives). Served at 6.1 and, for callers pinned to an older release, 5.13.

import { z } from 'zod';
import type { ComputeForensics } from '../../compute/forensics.js';
import type { ComputeManager } from '../../compute/manager.js';
import { UNAVAILABLE_CONSOLES, UNSUPPORTED_OPERATIONS } from '../../compute/unsupported.js';
import type { RequestContext } from '../../context.js';
import { Invalid } from '../../exception.js';
import { commandLine } from '../../qmp/framing.js';
import type { MonitorCommand } from '../../virt/driver.js';
import type { RpcEndpoint } from '../dispatcher.js';
import { diagnosticsPrimitive } from '../objects/diagnostics.js';
import { parseInstanceArg } from '../objects/instance.js';
import { WireException } from '../failure.js';
import { ObjectFormatError } from '../objects/primitive.js';
import { pyStrRepr } from '../pyrepr.js';

export const COMPUTE_RPC_VERSIONS = ['6.1', '5.13'] as const;

type Handler = (ctx: RequestContext, args: Record<string, unknown>) => Promise<unknown>;

const tailLength = z
  .union([z.number().int().min(-1).max(1_000_000), z.string().regex(/^-?\d{1,7}$/).transform(Number), z.null()])
  .optional()
  .transform((v) => (v === undefined || v === null ? null : v));
const consoleType = z.string().min(1).max(32);
const rebootType = z
  .string()
  .transform((v) => v.toUpperCase())
  .pipe(z.enum(['SOFT', 'HARD']));
const qmpCommand = z.object({ execute: z.string().min(1).max(128), arguments: z.record(z.string(), z.unknown()).optional() }).strict();

/** Parses `args[name]` with `schema`; a bad value is Nova's Invalid (a failure reply, never a crash). */
export function arg<T extends z.ZodType>(args: Record<string, unknown>, name: string, schema: T): z.output<T> {
  const result = schema.safeParse(args[name]);
  if (!result.success) throw new Invalid(`Invalid argument ${name}: ${result.error.issues[0]?.message ?? 'invalid'}`);
  return result.data;
}

/** The monitor_command extension's `command`: QMP JSON text, or an HMP command line when `hmp` is true. */
export function parseMonitorCommand(command: unknown, hmp: unknown): MonitorCommand {
  if (typeof command !== 'string' || command.length === 0 || command.length > 65536) {
    throw new Invalid('Invalid argument command: a non-empty string of at most 64 KiB');
  }
  if (hmp === true) return { kind: 'hmp', commandLine: command };
  let parsed: unknown;
  try {
    parsed = JSON.parse(command);
  } catch {
    throw new Invalid('Invalid argument command: not QMP JSON (use hmp for HMP command lines)');
  }
  const result = qmpCommand.safeParse(parsed);
  if (!result.success) throw new Invalid('Invalid argument command: QMP needs {"execute": NAME, "arguments": {...}}');
  try {
    commandLine(result.data.execute, result.data.arguments);
  } catch (err) {
    throw new Invalid(`Invalid argument command: ${(err as Error).message}`);
  }
  return { kind: 'qmp', execute: result.data.execute, arguments: result.data.arguments };
}

/**
 * Each method's keyword arguments, as Nova's ComputeManager declares them (the 5.x proxy passes these
 * through unchanged). Anything else is answered as oslo's dispatcher answers it: calling the Python
 * method raises TypeError, and Nova's decorators re-raise it through inspect.getcallargs, whose message
 * names the bare function and the first unexpected argument in the order the caller sent them.
 */
const METHOD_PARAMS: Readonly<Record<string, readonly string[]>> = {
  get_console_output: ['instance', 'tail_length'],
  get_instance_diagnostics: ['instance'],
  get_diagnostics: ['instance'],
  get_vnc_console: ['console_type', 'instance'],
  get_serial_console: ['console_type', 'instance'],
  validate_console_port: ['instance', 'port', 'console_type'],
  stop_instance: ['instance', 'clean_shutdown'],
  start_instance: ['instance'],
  pause_instance: ['instance'],
  unpause_instance: ['instance'],
  reboot_instance: ['instance', 'block_device_info', 'reboot_type'],
  get_host_uptime: [],
  set_host_enabled: ['enabled'],
  monitor_command: ['instance', 'command', 'hmp'],
  trigger_crash_dump: ['instance'],
  external_instance_event: ['instances', 'events'],
  ...Object.fromEntries(UNSUPPORTED_OPERATIONS.map((op) => [op.method, op.params])),
  ...Object.fromEntries(UNAVAILABLE_CONSOLES.map((method) => [method, ['console_type', 'instance']])),
};

/** Python's TypeError for a keyword argument the method does not take (builtins are re-raised by every oslo client). */
export class UnexpectedKeywordArgument extends WireException {
  constructor(method: string, argName: string) {
    super('builtins', 'TypeError', `${method}() got an unexpected keyword argument ${pyStrRepr(argName)}`);
  }
}

/** The first argument `method` does not take (by `table`, Nova's methods by default), or null. */
export function unexpectedArgument(method: string, args: Record<string, unknown>, table: Readonly<Record<string, readonly string[]>> = METHOD_PARAMS): string | null {
  const params = table[method];
  if (!params) return null;
  for (const name of Object.keys(args)) if (!params.includes(name)) return name;
  return null;
}

/** Operations on one instance, run in arrival order (the refused ones too: suspend then resume). */
const ORDERED_METHODS = new Set([
  'stop_instance', 'start_instance', 'pause_instance', 'unpause_instance', 'reboot_instance', 'trigger_crash_dump',
  ...UNSUPPORTED_OPERATIONS.map((op) => op.method),
]);

export class ComputeEndpoint implements RpcEndpoint {
  readonly namespace = null;
  private readonly handlers: Record<string, Handler>;

  constructor(
    readonly version: string,
    private readonly manager: ComputeManager,
    forensics?: ComputeForensics,
  ) {
    const m = manager;
    const instanceOf = async (args: Record<string, unknown>) => {
      try {
        return await m.resolve(parseInstanceArg(args['instance']));
      } catch (err) {
        if (err instanceof ObjectFormatError) throw new Invalid(`Invalid argument instance: ${err.message}`);
        throw err;
      }
    };
    this.handlers = {
      get_console_output: async (ctx, a) => m.getConsoleOutput(ctx, await instanceOf(a), arg(a, 'tail_length', tailLength)),
      get_instance_diagnostics: async (ctx, a) => diagnosticsPrimitive(await m.getInstanceDiagnostics(ctx, await instanceOf(a))),
      get_diagnostics: async (ctx, a) => m.getDiagnostics(ctx, await instanceOf(a)),
      get_vnc_console: async (ctx, a) => connectInfo(await m.getVncConsole(ctx, await instanceOf(a), arg(a, 'console_type', consoleType))),
      get_serial_console: async (ctx, a) => connectInfo(await m.getSerialConsole(ctx, await instanceOf(a), arg(a, 'console_type', consoleType))),
      validate_console_port: async (ctx, a) =>
        m.validateConsolePort(ctx, await instanceOf(a), arg(a, 'port', z.coerce.number().int().min(1).max(65535)), arg(a, 'console_type', consoleType)),
      stop_instance: async (ctx, a) => m.stopInstance(ctx, await instanceOf(a), arg(a, 'clean_shutdown', z.boolean().optional().default(true))),
      start_instance: async (ctx, a) => m.startInstance(ctx, await instanceOf(a)),
      pause_instance: async (ctx, a) => m.pauseInstance(ctx, await instanceOf(a)),
      unpause_instance: async (ctx, a) => m.unpauseInstance(ctx, await instanceOf(a)),
      reboot_instance: async (ctx, a) => m.rebootInstance(ctx, await instanceOf(a), arg(a, 'reboot_type', rebootType)),
      get_host_uptime: async () => m.getHostUptime(),
      set_host_enabled: async (ctx, a) => m.setHostEnabled(ctx, arg(a, 'enabled', z.boolean())),
      monitor_command: async (ctx, a) => m.monitorCommand(ctx, await instanceOf(a), parseMonitorCommand(a['command'], a['hmp'])),
      // Neutron's events about the guests' ports (network-vif-plugged, network-changed, ...) that Nova's API
      // forwards: novamon manages no networking, so there is nothing to update; a cast, answered by nobody.
      external_instance_event: async () => null,
    };
    for (const op of UNSUPPORTED_OPERATIONS) this.handlers[op.method] = async (ctx, a) => m.refuseUnsupported(ctx, await instanceOf(a), op);
    for (const method of UNAVAILABLE_CONSOLES) {
      this.handlers[method] = async (ctx, a) => m.unavailableConsole(ctx, await instanceOf(a), arg(a, 'console_type', consoleType));
    }
    if (forensics) this.handlers['trigger_crash_dump'] = async (ctx, a) => forensics.triggerCrashDump(ctx, await instanceOf(a));
  }

  hasMethod(method: string): boolean {
    return Object.hasOwn(this.handlers, method);
  }

  handle(method: string, ctx: RequestContext, args: Record<string, unknown>): Promise<unknown> | undefined {
    const handler = this.hasMethod(method) ? this.handlers[method] : undefined;
    if (!handler) return undefined;
    const unexpected = unexpectedArgument(method, args);
    if (unexpected !== null) return Promise.reject(new UnexpectedKeywordArgument(method, unexpected));
    return handler(ctx, args);
  }

  /** Power actions on one instance run in arrival order; reads run concurrently. */
  orderingKey(method: string, args: Record<string, unknown>): string | null {
    if (!ORDERED_METHODS.has(method)) return null;
    const inst = args['instance'];
    if (typeof inst !== 'object' || inst === null) return null;
    const data = (inst as Record<string, unknown>)['nova_object.data'] ?? inst;
    const uuid = (data as Record<string, unknown>)['uuid'];
    return typeof uuid === 'string' ? uuid.toLowerCase() : null;
  }
}

function connectInfo(info: { host: string; port: number; internalAccessPath: string | null; token: string; accessUrl: string }) {
  return { host: info.host, port: info.port, internal_access_path: info.internalAccessPath, token: info.token, access_url: info.accessUrl };
}

export function computeEndpoints(manager: ComputeManager, forensics?: ComputeForensics): ComputeEndpoint[] {
  return COMPUTE_RPC_VERSIONS.map((v) => new ComputeEndpoint(v, manager, forensics));
}
