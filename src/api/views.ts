// JSON views of what novamon-api returns, field for field as Nova's view builders write them at each
// microversion: servers (summary and detail), instance actions with events, diagnostics, versions.

import { createHash } from 'node:crypto';
import type { RequestContext } from '../context.js';
import type { InstanceActionRow, InstanceActionWithEvents, InstanceActionEventRow } from '../db/instance-action-repository.js';
import type { InstanceFaultRow } from '../db/instance-fault-repository.js';
import type { InstanceRow } from '../db/instance-repository.js';
import { isPrimitive } from '../rpc/objects/primitive.js';
import { can } from './policy.js';
import { MAX_VERSION, MIN_VERSION, isSupported, versionString, type ApiVersion } from './microversion.js';

export interface ViewContext {
  version: ApiVersion;
  /** Scheme, host and port the client used, e.g. http://127.0.0.1:8774 (no trailing slash). */
  baseUrl: string;
  ctx: Pick<RequestContext, 'isAdmin' | 'projectId'>;
}

/** The flavor novamon reports: it does not know the guest's flavor, so it names itself. */
export const FLAVOR_ID = 'novamon';

const STATUS: Record<string, Record<string, string>> = {
  active: {
    default: 'ACTIVE',
    rebooting: 'REBOOT',
    reboot_pending: 'REBOOT',
    reboot_started: 'REBOOT',
    rebooting_hard: 'HARD_REBOOT',
    reboot_pending_hard: 'HARD_REBOOT',
    reboot_started_hard: 'HARD_REBOOT',
    migrating: 'MIGRATING',
  },
  building: { default: 'BUILD' },
  stopped: { default: 'SHUTOFF' },
  resized: { default: 'VERIFY_RESIZE' },
  paused: { default: 'PAUSED', migrating: 'MIGRATING' },
  suspended: { default: 'SUSPENDED' },
  rescued: { default: 'RESCUE' },
  error: { default: 'ERROR' },
  deleted: { default: 'DELETED' },
  'soft-delete': { default: 'SOFT_DELETED' },
  shelved: { default: 'SHELVED' },
  shelved_offloaded: { default: 'SHELVED_OFFLOADED' },
};

/** Nova's status_from_state. */
export function statusFromState(vmState: string | null, taskState: string | null): string {
  const map = (vmState !== null ? STATUS[vmState] : undefined) ?? { default: 'UNKNOWN' };
  return (taskState !== null ? map[taskState] : undefined) ?? map['default'] ?? 'UNKNOWN';
}

/** Status strings → the vm_states they come from (for the `status` list filter). */
export function vmStatesForStatus(status: string): string[] {
  const s = status.toUpperCase();
  return Object.entries(STATUS)
    .filter(([, m]) => Object.values(m).includes(s))
    .map(([vm]) => vm);
}

/** Nova's generate_hostid: sha224 of project_id + host, '' without a host. */
export function hostId(projectId: string | null, host: string | null): string {
  if (!host) return '';
  return createHash('sha224').update(`${projectId ?? ''}${host}`, 'utf8').digest('hex');
}

/** utils.isotime: seconds and Z. */
export function isoTime(d: Date): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** oslo's PERFECT_TIME_FORMAT (microseconds, no zone), as datetimes serialise in Nova's JSON. */
export function perfectTime(d: Date | null): string | null {
  if (d === null) return null;
  return `${d.toISOString().slice(0, 23)}000`;
}

/** The name clients see: the display name, else the hypervisor's name for an unadopted guest. */
export function serverName(row: Pick<InstanceRow, 'displayName' | 'name'>): string {
  return row.displayName ?? row.name;
}

function links(vc: ViewContext, collection: string, id: string) {
  return [
    { rel: 'self', href: `${vc.baseUrl}/v2.1/${collection}/${id}` },
    { rel: 'bookmark', href: `${vc.baseUrl}/${collection}/${id}` },
  ];
}

export function serverSummary(row: InstanceRow, vc: ViewContext): Record<string, unknown> {
  return { id: row.uuid, name: serverName(row), links: links(vc, 'servers', row.uuid) };
}

export interface ServerDetailOptions {
  /** Latest fault, shown for ERROR servers. */
  fault?: InstanceFaultRow | null;
  /** GET /servers/{id} at 2.71+ adds server_groups. */
  showServerGroups?: boolean;
}

export function serverDetail(row: InstanceRow, vc: ViewContext, opts: ServerDetailOptions = {}): Record<string, unknown> {
  const v = vc.version;
  const target = { projectId: row.projectId };
  const status = statusFromState(row.vmState, row.taskState);
  const flavor = isSupported(v, '2.47')
    ? {
        vcpus: 0,
        ram: 0,
        disk: 0,
        ephemeral: 0,
        swap: 0,
        original_name: FLAVOR_ID,
        ...(can(vc.ctx, 'os_compute_api:servers:show:flavor-extra-specs', target) ? { extra_specs: {} } : {}),
      }
    : { id: FLAVOR_ID, links: [{ rel: 'bookmark', href: `${vc.baseUrl}/flavors/${FLAVOR_ID}` }] };
  const s: Record<string, unknown> = {
    id: row.uuid,
    name: serverName(row),
    status,
    tenant_id: row.projectId ?? '',
    user_id: row.userId ?? '',
    metadata: {},
    hostId: hostId(row.projectId, row.host),
    // '' is what Nova shows for a server without an image (booted from volume): clients skip the lookup.
    image: '',
    flavor,
    created: isoTime(row.createdAt),
    updated: isoTime(row.updatedAt ?? row.createdAt),
    addresses: {},
    accessIPv4: '',
    accessIPv6: '',
    links: links(vc, 'servers', row.uuid),
    'OS-DCF:diskConfig': 'MANUAL',
  };
  if ((status === 'ERROR' || status === 'DELETED') && opts.fault) {
    const f = opts.fault;
    s['fault'] = {
      code: f.code,
      created: isoTime(f.createdAt),
      message: f.message ?? '',
      ...(vc.ctx.isAdmin || f.code !== 500 ? { details: f.details ?? '' } : {}),
    };
  }
  if (['ACTIVE', 'BUILD', 'REBUILD', 'RESIZE', 'VERIFY_RESIZE', 'MIGRATING'].includes(status)) s['progress'] = 0;
  s['OS-EXT-AZ:availability_zone'] = row.host ? 'nova' : '';
  s['config_drive'] = '';
  s['key_name'] = null;
  s['OS-SRV-USG:launched_at'] = perfectTime(row.launchedAt);
  s['OS-SRV-USG:terminated_at'] = perfectTime(row.terminatedAt);
  const extended = can(vc.ctx, 'os_compute_api:os-extended-server-attributes', target);
  if (extended) {
    s['OS-EXT-SRV-ATTR:host'] = row.host;
    s['OS-EXT-SRV-ATTR:instance_name'] = row.name;
    s['OS-EXT-SRV-ATTR:hypervisor_hostname'] = row.node;
    if (isSupported(v, '2.3')) {
      s['OS-EXT-SRV-ATTR:reservation_id'] = '';
      s['OS-EXT-SRV-ATTR:launch_index'] = 0;
      s['OS-EXT-SRV-ATTR:hostname'] = row.hostname ?? serverName(row);
      s['OS-EXT-SRV-ATTR:kernel_id'] = '';
      s['OS-EXT-SRV-ATTR:ramdisk_id'] = '';
      s['OS-EXT-SRV-ATTR:root_device_name'] = null;
      s['OS-EXT-SRV-ATTR:user_data'] = null;
    }
  }
  s['OS-EXT-STS:task_state'] = row.taskState;
  s['OS-EXT-STS:vm_state'] = row.vmState;
  s['OS-EXT-STS:power_state'] = row.powerState ?? 0;
  s['os-extended-volumes:volumes_attached'] = [];
  // novamon keeps no service heartbeats, so it cannot tell UP from DOWN: Nova's word for that is UNKNOWN.
  if (isSupported(v, '2.16') && can(vc.ctx, 'os_compute_api:servers:show:host_status', target)) s['host_status'] = row.host ? 'UNKNOWN' : '';
  if (isSupported(v, '2.9')) s['locked'] = false;
  if (isSupported(v, '2.73')) s['locked_reason'] = null;
  if (isSupported(v, '2.19')) s['description'] = null;
  if (isSupported(v, '2.26')) s['tags'] = [];
  if (isSupported(v, '2.63')) s['trusted_image_certificates'] = null;
  if (isSupported(v, '2.71') && opts.showServerGroups) s['server_groups'] = [];
  return s;
}

// --- instance actions ---------------------------------------------------------------------------

export function actionView(a: InstanceActionRow, v: ApiVersion): Record<string, unknown> {
  const out: Record<string, unknown> = {
    action: a.action,
    instance_uuid: a.instanceUuid,
    request_id: a.requestId,
    user_id: a.userId,
    project_id: a.projectId,
    start_time: perfectTime(a.startTime),
    message: a.message,
  };
  if (isSupported(v, '2.58')) out['updated_at'] = perfectTime(a.updatedAt ?? a.startTime);
  return out;
}

export function actionWithEventsView(a: InstanceActionWithEvents, vc: ViewContext, instanceProjectId: string | null): Record<string, unknown> {
  const v = vc.version;
  const target = { projectId: instanceProjectId };
  const out = actionView(a, v);
  let showEvents = false;
  let showTraceback = false;
  let showHost = false;
  if (can(vc.ctx, 'os_compute_api:os-instance-actions:events', target)) {
    showEvents = showTraceback = true;
    showHost = isSupported(v, '2.62');
  } else if (isSupported(v, '2.51')) {
    showEvents = true;
  }
  const showHostId = isSupported(v, '2.62');
  if (showEvents) {
    const showDetails = isSupported(v, '2.84') && can(vc.ctx, 'os_compute_api:os-instance-actions:events:details', target);
    out['events'] = a.events.map((e) => eventView(e, a.projectId ?? instanceProjectId, { showTraceback, showHost, showHostId, showDetails }));
  }
  return out;
}

function eventView(
  e: InstanceActionEventRow,
  projectId: string | null,
  o: { showTraceback: boolean; showHost: boolean; showHostId: boolean; showDetails: boolean },
): Record<string, unknown> {
  const out: Record<string, unknown> = {
    event: e.event,
    start_time: perfectTime(e.startTime),
    finish_time: perfectTime(e.finishTime),
    result: e.result,
  };
  if (o.showTraceback) out['traceback'] = e.traceback;
  if (o.showHost) out['host'] = e.host;
  if (o.showHostId) out['hostId'] = hostId(projectId, e.host);
  if (o.showDetails) out['details'] = e.details;
  return out;
}

// --- diagnostics --------------------------------------------------------------------------------

const DIAGNOSTICS_FIELDS = [
  'state',
  'driver',
  'hypervisor',
  'hypervisor_os',
  'uptime',
  'config_drive',
  'num_cpus',
  'num_nics',
  'num_disks',
  'cpu_details',
  'nic_details',
  'disk_details',
  'memory_details',
] as const;

function unwrap(value: unknown): unknown {
  if (isPrimitive(value)) return unwrap(value['nova_object.data']);
  if (Array.isArray(value)) return value.map(unwrap);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, x]) => [k, unwrap(x)]));
  }
  return value;
}

/** The 2.48+ view of a Diagnostics object (a primitive from RPC): every field present, unknown = null. */
export function diagnosticsView(result: unknown): Record<string, unknown> {
  const data = unwrap(result);
  const d = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const f of DIAGNOSTICS_FIELDS) out[f] = d[f] ?? null;
  const mem = d['memory_details'];
  const m = typeof mem === 'object' && mem !== null ? (mem as Record<string, unknown>) : {};
  out['memory_details'] = { maximum: m['maximum'] ?? null, used: m['used'] ?? null };
  for (const list of ['cpu_details', 'nic_details', 'disk_details']) if (!Array.isArray(out[list])) out[list] = [];
  return out;
}

// --- versions -------------------------------------------------------------------------------------

export function versionV21(baseUrl: string): Record<string, unknown> {
  return {
    id: 'v2.1',
    status: 'CURRENT',
    version: versionString(MAX_VERSION),
    min_version: versionString(MIN_VERSION),
    updated: '2013-07-23T11:33:21Z',
    links: [{ rel: 'self', href: `${baseUrl}/v2.1/` }],
  };
}

export function versionsIndex(baseUrl: string): Record<string, unknown> {
  return {
    versions: [
      { id: 'v2.0', status: 'SUPPORTED', version: '', min_version: '', updated: '2011-01-21T11:33:21Z', links: [{ rel: 'self', href: `${baseUrl}/v2/` }] },
      versionV21(baseUrl),
    ],
  };
}

export function versionShow(baseUrl: string): Record<string, unknown> {
  const v = versionV21(baseUrl);
  return {
    version: {
      ...v,
      links: [
        { rel: 'self', href: `${baseUrl}/v2.1/` },
        { rel: 'describedby', type: 'text/html', href: 'http://docs.openstack.org/' },
      ],
      'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.compute+json;version=2.1' }],
    },
  };
}
