// Nova's Zed default policies for the operations novamon-api serves: admin only for diagnostics, the
// extended server attributes, host status, all_tenants, action event details and the monitor
// passthrough; project owner or admin for the rest. A denial is Nova's 403 fault naming the rule.

import type { RequestContext } from '../context.js';
import { forbidden } from './faults.js';

export type PolicyRule = keyof typeof RULES;

const ADMIN = 'admin' as const;
const OWNER_OR_ADMIN = 'owner_or_admin' as const;

export const RULES = {
  'os_compute_api:servers:index': OWNER_OR_ADMIN,
  'os_compute_api:servers:detail': OWNER_OR_ADMIN,
  'os_compute_api:servers:show': OWNER_OR_ADMIN,
  'os_compute_api:servers:index:get_all_tenants': ADMIN,
  'os_compute_api:servers:detail:get_all_tenants': ADMIN,
  'os_compute_api:servers:allow_all_filters': ADMIN,
  'os_compute_api:servers:show:host_status': ADMIN,
  'os_compute_api:servers:show:flavor-extra-specs': OWNER_OR_ADMIN,
  'os_compute_api:os-extended-server-attributes': ADMIN,
  'os_compute_api:servers:start': OWNER_OR_ADMIN,
  'os_compute_api:servers:stop': OWNER_OR_ADMIN,
  'os_compute_api:servers:reboot': OWNER_OR_ADMIN,
  'os_compute_api:os-pause-server:pause': OWNER_OR_ADMIN,
  'os_compute_api:os-pause-server:unpause': OWNER_OR_ADMIN,
  'os_compute_api:os-console-output': OWNER_OR_ADMIN,
  'os_compute_api:os-remote-consoles': OWNER_OR_ADMIN,
  'os_compute_api:os-server-diagnostics': ADMIN,
  'os_compute_api:os-instance-actions:list': OWNER_OR_ADMIN,
  'os_compute_api:os-instance-actions:show': OWNER_OR_ADMIN,
  'os_compute_api:os-instance-actions:events': ADMIN,
  'os_compute_api:os-instance-actions:events:details': ADMIN,
  /** novamon's extension; the compute host checks it again before running anything. */
  'os_compute_api:os-server-monitor-command': ADMIN,
  'os_compute_api:servers:trigger_crash_dump': OWNER_OR_ADMIN,
  /** novamon's extension: a look at the screen is what the console already shows its owner. */
  'os_compute_api:os-server-screenshot': OWNER_OR_ADMIN,
} as const;

export interface PolicyTarget {
  projectId?: string | null;
}

/** True when `ctx` passes `rule` for `target` (Nova's context.can(..., fatal=False)). */
export function can(ctx: Pick<RequestContext, 'isAdmin' | 'projectId'>, rule: PolicyRule, target: PolicyTarget = {}): boolean {
  if (ctx.isAdmin) return true;
  if (RULES[rule] === ADMIN) return false;
  // Without a target (collection calls) the rule checks the context's own project, as Nova does.
  const project = target.projectId === undefined ? ctx.projectId : target.projectId;
  return ctx.projectId !== null && project !== null && project === ctx.projectId;
}

/** Nova's context.can(): throws the 403 fault when not allowed. */
export function authorize(ctx: Pick<RequestContext, 'isAdmin' | 'projectId'>, rule: PolicyRule, target: PolicyTarget = {}): void {
  if (!can(ctx, rule, target)) throw forbidden(rule);
}
