// Who may run which monitor command: admin contexts only, and only commands on the allow-list
// ([monitor] passthrough_allowed_commands: QMP commands by name, HMP commands by their first words).
// human-monitor-command through QMP is checked against the HMP list by its command line.

import { inject, injectable } from 'inversify';
import type { RequestContext } from '../context.js';
import { Invalid, PolicyNotAuthorized, type NovaException } from '../exception.js';
import type { MonitorCommand } from '../virt/driver.js';
import { ComputeSettings, type ComputeSettingsShape } from './tokens.js';

export const MONITOR_POLICY_RULE = 'os_compute_api:os-server-monitor-command';

export type MonitorDecision = { allowed: true } | { allowed: false; error: NovaException };

@injectable()
export class MonitorPolicy {
  private readonly qmp = new Set<string>();
  private readonly hmp: string[][] = [];

  constructor(@inject(ComputeSettings) settings: Pick<ComputeSettingsShape, 'monitorAllowedCommands'>) {
    for (const entry of settings.monitorAllowedCommands) {
      // One word names a QMP command; several words are an HMP command line's prefix ("info vnc").
      const words = entry.trim().split(/\s+/);
      if (words.length > 1) this.hmp.push(words);
      else if (words[0]) this.qmp.add(words[0]);
    }
  }

  check(ctx: RequestContext, command: MonitorCommand): MonitorDecision {
    if (!ctx.isAdmin) return { allowed: false, error: new PolicyNotAuthorized(MONITOR_POLICY_RULE) };
    if (command.kind === 'qmp') {
      if (!this.qmp.has(command.execute)) return refuse(`QMP command ${command.execute} is not allowed`);
      if (command.execute === 'human-monitor-command') {
        const line = command.arguments?.['command-line'];
        if (typeof line !== 'string' || !this.hmpAllowed(line)) return refuse('HMP command line is not allowed');
      }
      return { allowed: true };
    }
    return this.hmpAllowed(command.commandLine) ? { allowed: true } : refuse(`HMP command ${command.commandLine.slice(0, 60)} is not allowed`);
  }

  private hmpAllowed(line: string): boolean {
    if (/[\r\n\0]/.test(line)) return false;
    const words = line.trim().split(/\s+/);
    return this.hmp.some((allowed) => allowed.length <= words.length && allowed.every((w, i) => w === words[i]));
  }
}

function refuse(message: string): MonitorDecision {
  return { allowed: false, error: new Invalid(`${message} (see [monitor] passthrough_allowed_commands)`) };
}
