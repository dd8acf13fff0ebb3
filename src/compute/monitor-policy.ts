// Who may run which monitor command: admin contexts only, never a command on the built-in deny list,
// only commands on the allow-list ([monitor] passthrough_allowed_commands: QMP commands by name, HMP
// commands by their first words), and commands that take a path or URI only with arguments the rules in
// monitor-rules.ts accept. human-monitor-command through QMP is checked as the HMP line it carries.

import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import { Invalid, PolicyNotAuthorized, type NovaException } from '../exception.js';
import type { MonitorCommand } from '../virt/driver.js';
import { HMP_DENIED, hmpArgumentRule, parseHmpLine, QMP_DENIED, qmpArgumentRule, type MonitorRuleSettings } from './monitor-rules.js';
import { ComputeSettings, type ComputeSettingsShape } from './tokens.js';

export const MONITOR_POLICY_RULE = 'os_compute_api:os-server-monitor-command';

export type MonitorDecision = { allowed: true } | { allowed: false; error: NovaException };

/** A QMP command the built-in deny list refuses whatever the allow-list says (x- commands are experimental). */
export function qmpDenied(execute: string): boolean {
  return QMP_DENIED.has(execute) || execute.startsWith('x-');
}

@injectable()
export class MonitorPolicy {
  private readonly qmp = new Set<string>();
  private readonly hmp: string[][] = [];
  private readonly rules: MonitorRuleSettings;
  /** Allow-list entries the built-in deny list overrides (start-up logs them). */
  readonly overridden: string[] = [];

  constructor(@inject(ComputeSettings) settings: Pick<ComputeSettingsShape, 'monitorAllowedCommands' | 'instancesPath' | 'monitorMigrateUriSchemes'>) {
    this.rules = { instancesPath: settings.instancesPath ?? '', migrateUriSchemes: settings.monitorMigrateUriSchemes ?? [] };
    for (const entry of settings.monitorAllowedCommands) {
      // One word names a QMP command; several words, or one word after `hmp:`, are an HMP command
      // line's prefix ("info vnc", "hmp:screendump").
      const trimmed = entry.trim();
      const hmpOnly = trimmed.startsWith('hmp:');
      const words = (hmpOnly ? trimmed.slice(4) : trimmed).split(/\s+/).filter((w) => w !== '');
      if (words.length > 1 || (hmpOnly && words.length === 1)) {
        this.hmp.push(words);
        if (HMP_DENIED.has(words[0] ?? '')) this.overridden.push(entry);
      } else if (words[0]) {
        this.qmp.add(words[0]);
        if (qmpDenied(words[0])) this.overridden.push(entry);
      }
    }
  }

  check(ctx: RequestContext, command: MonitorCommand): MonitorDecision {
    if (!ctx.isAdmin) return { allowed: false, error: new PolicyNotAuthorized(MONITOR_POLICY_RULE) };
    if (command.kind === 'hmp') return this.checkHmp(command.commandLine);
    const { execute } = command;
    if (qmpDenied(execute)) return never(`QMP command ${execute}`);
    const args = command.arguments ?? {};
    const why = qmpArgumentRule(execute, args, this.rules);
    if (why !== null) return refuse(why);
    if (!this.qmp.has(execute)) return refuse(`QMP command ${execute} is not allowed`);
    if (execute === 'human-monitor-command') {
      const line = args['command-line'];
      return typeof line === 'string' ? this.checkHmp(line) : refuse('HMP command line is not allowed');
    }
    return { allowed: true };
  }

  private checkHmp(line: string): MonitorDecision {
    const parsed = parseHmpLine(line);
    if (!parsed) return refuse('HMP command line with quotes, escapes or control characters is not allowed');
    if (HMP_DENIED.has(parsed.name)) return never(`HMP command ${parsed.name}`);
    const why = hmpArgumentRule(parsed.name, parsed.args, this.rules);
    if (why !== null) return refuse(why);
    const words = [parsed.name, ...parsed.args];
    const listed = this.hmp.some((allowed) => allowed.length <= words.length && allowed.every((w, i) => w === words[i]));
    return listed ? { allowed: true } : refuse(`HMP command ${line.slice(0, 60)} is not allowed`);
  }
}

function refuse(message: string): MonitorDecision {
  return { allowed: false, error: new Invalid(`${message} (see [monitor] passthrough_allowed_commands)`) };
}

function never(what: string): MonitorDecision {
  return { allowed: false, error: new Invalid(`${what} is never allowed through the passthrough: it writes host files, opens host sockets, runs programs or reconfigures the guest (docs/security.md)`) };
}
