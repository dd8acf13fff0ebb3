// Every configuration option novamon reads, in nova.conf's sections and spellings, with its type,
// default and help. The loader validates against this table and etc/novamon/novamon.conf.sample is
// generated from it, so the two cannot drift apart.

import os from 'node:os';
import { z } from 'zod';

export interface OptionSpec<T extends z.ZodType = z.ZodType> {
  readonly schema: T;
  /** Default shown in the sample; undefined for options derived at load time. */
  readonly default: z.output<T> | undefined;
  readonly help: string;
}

const bool = z
  .union([z.boolean(), z.enum(['true', 'false', 'True', 'False', 'yes', 'no', '1', '0', 'on', 'off'])])
  .transform((v) => (typeof v === 'boolean' ? v : ['true', 'True', 'yes', '1', 'on'].includes(v)));
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const str = z.string();
const list = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter((s) => s.length > 0));

function opt<T extends z.ZodType>(schema: T, dflt: z.output<T> | undefined, help: string): OptionSpec<T> {
  return { schema, default: dflt, help };
}

export const options = {
  DEFAULT: {
    host: opt(str.min(1).max(255).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, dot, dash and underscore only'), os.hostname(),
      'Name of this compute host: the server of the compute.<host> RPC queue and the host column of instances.'),
    transport_url: opt(str.regex(/^rabbit:\/\//, 'must be a rabbit:// URL'), 'rabbit://guest:guest@127.0.0.1:5672/',
      'oslo.messaging transport URL of the RabbitMQ broker.'),
    control_exchange: opt(str.min(1), 'nova', 'Topic exchange the compute RPC API lives on.'),
    compute_driver: opt(z.enum(['qemu', 'libvirt', 'fake']), 'qemu',
      'Hypervisor driver: qemu (direct QMP sockets), libvirt (qemu-monitor-command passthrough) or fake (in memory).'),
    state_path: opt(str.min(1), '/var/lib/novamon', 'Top-level directory for novamon state (embedded database, spool).'),
    instances_path: opt(str, '', 'Directory holding <name>.monitor sockets and console logs; empty = $state_path/instances.'),
    instance_name_template: opt(str.regex(/%(0?\d+)?[xXd]/, 'must contain one %x, %X or %d conversion'), 'instance-%08x',
      'Template for instance names, formatted with the instance id (Nova\'s option).'),
    sync_power_state_interval: opt(int(-1, 86400 * 7), 600,
      'Seconds between power-state syncs with the hypervisor; -1 disables the periodic sync.'),
    shutdown_timeout: opt(int(0, 3600), 60,
      'Seconds a clean power_off waits for the guest to power itself off before forcing it (Nova\'s option).'),
    rpc_response_timeout: opt(int(1, 3600), 60, 'Seconds an RPC call made by novamon waits for its reply.'),
    instance_store: opt(z.enum(['database', 'conductor']), 'database',
      'Where novamon-compute reads and writes instances, actions, faults and console tokens: database (novamon\'s own, [database] connection) or conductor (a Nova cloud\'s, through nova-conductor on the control_exchange; the host then registers as nova-compute).'),
    report_interval: opt(int(0, 3600), 10,
      'Seconds between service heartbeats to nova-conductor when instance_store = conductor (Nova\'s option; 0 = none).'),
    executor_thread_pool_size: opt(int(1, 4096), 64, 'RPC messages handled concurrently by one server (bounded prefetch).'),
    instance_delete_interval: opt(int(0, 86400), 300,
      'Seconds between housekeeping rounds of novamon-compute: expired console tokens deleted (as nova-compute does on this period, Nova\'s option) and diagnostics snapshots past their retention; 0 = never.'),
    debug: opt(bool, false, 'Log at debug level.'),
    log_format: opt(z.enum(['pretty', 'json']), 'json', 'Log as JSON lines, or pretty-printed for a terminal.'),
    event_loop_warning_ms: opt(int(0, 60000), 200, 'Log a warning when the event loop is held this many ms (with the CPU time used); 0 = never.'),
    default_instance_project: opt(str, '', 'Project that owns guests discovered on the host; empty = no owner until adopted.'),
    default_instance_user: opt(str, '', 'User that owns guests discovered on the host; empty = no owner until adopted.'),
    osapi_compute_listen: opt(str, '127.0.0.1', 'Address novamon-api listens on.'),
    osapi_compute_listen_port: opt(int(1, 65535), 8774, 'Port novamon-api listens on.'),
  },
  database: {
    connection: opt(str.regex(/^(|postgres(ql)?:\/\/.*)$/, 'must be empty (embedded PGlite) or a postgresql:// URL'), '',
      'PostgreSQL URL; empty = embedded PGlite database under $state_path/db.'),
    max_pool_size: opt(int(1, 100), 5, 'Connections in the PostgreSQL pool.'),
    diagnostics_retention_hours: opt(int(0, 87600), 168,
      'Hours a diagnostics snapshot is kept in instance_diagnostics; each compute host drops its own older ones at every housekeeping round ([DEFAULT] instance_delete_interval). 0 = kept for ever.'),
  },
  libvirt: {
    connection_uri: opt(str, 'qemu:///system', 'libvirt URI used by compute_driver = libvirt.'),
    wait_soft_reboot_seconds: opt(int(0, 3600), 120,
      'Seconds a soft reboot waits for the guest to shut down before rebooting it hard (Nova\'s option; qemu driver too).'),
  },
  qemu: {
    emulators: opt(list, ['/usr/bin/qemu-system-x86_64'],
      'Absolute paths of the QEMU binaries the qemu driver accepts: a process serving a monitor socket must run one, and ' +
      'power_on relaunches a stopped guest with one of these only (never the recorded argv[0]).'),
    relaunch_image_paths: opt(list.pipe(z.array(str.regex(/^\//, 'must be an absolute path'))), [],
      'Directories, besides instances_path, where power_on may find the disk images and other files (firmware, kernels, ' +
      'fw_cfg blobs) named in a stopped guest\'s recorded command line; every such path, symlinks followed, and every ' +
      'backing file a qcow2 image names must resolve inside instances_path or one of these (docs/security.md). Empty = ' +
      'instances_path only, which holds Nova\'s images (<uuid>/disk and _base/).'),
    panic_dump: opt(bool, false,
      'When a guest panics and QEMU keeps it stopped (GUEST_PANICKED with action pause: -action panic=pause, libvirt\'s ' +
      'on_crash preserve), dump its memory (dump-guest-memory, ELF) to $state_path/qemu/dumps/<name>/<UTC time>.elf, mode ' +
      '0600, before the power-state sync stops it. List them with novamon-manage instance dumps NAME.'),
    panic_dump_max_bytes: opt(int(0, 2 ** 50), 4 * 1024 ** 3,
      'Guests with more memory than this many bytes are not dumped (a warning is logged); nor is any guest when the ' +
      'filesystem has less free space than its memory plus 10%.'),
    panic_dump_keep: opt(int(1, 1000), 3, 'Memory dumps kept per guest; the oldest beyond this are removed after each new dump.'),
    panic_dump_timeout: opt(int(1, 86400), 300,
      'Seconds a memory dump may take; an unfinished one is removed. The guest is stopped afterwards either way.'),
  },
  monitor: {
    command_timeout: opt(num(0.1, 3600), 10, 'Seconds a monitor command may take before it fails with a timeout.'),
    connect_timeout: opt(num(0.1, 600), 5, 'Seconds to connect to a monitor socket and receive QEMU\'s greeting.'),
    passthrough_allowed_commands: opt(list, ['query-status', 'query-name', 'query-uuid', 'query-version', 'query-kvm',
      'query-cpus-fast', 'query-blockstats', 'query-block', 'query-balloon', 'query-vnc', 'query-chardev',
      'query-memory-size-summary', 'query-rx-filter', 'query-commands', 'human-monitor-command',
      'info status', 'info vnc', 'info block', 'info blockstats', 'info balloon', 'info cpus', 'info network',
      'info chardev', 'info version', 'info name', 'info uuid', 'info kvm', 'info mtree', 'info registers'],
    'QMP commands (by name) and HMP commands (by their first words; hmp:NAME for a one-word HMP command) that monitor_command may run. ' +
      'A built-in deny list (quit, device_add, netdev_add, chardev-add, object-add, getfd, add-fd, qom-set, ' +
      'blockdev-*, snapshots, logfile, gdbserver, ...: see docs/security.md) wins over this list; screendump, ' +
      'dump-guest-memory, pmemsave and memsave accept only absolute paths under instances_path, migrate only ' +
      'URIs of passthrough_migrate_uri_schemes.'),
    passthrough_migrate_uri_schemes: opt(list, ['tcp'],
      'URI schemes a passthrough migrate may use when migrate is allowed (unix: and file: paths must be under ' +
      'instances_path; exec: and fd: are never accepted).'),
  },
  oslo_messaging_rabbit: {
    amqp_durable_queues: opt(bool, false, 'Declare durable queues and exchanges (oslo\'s option).'),
    amqp_auto_delete: opt(bool, false, 'Auto-delete queues and exchanges (oslo\'s option).'),
    rabbit_transient_queues_ttl: opt(int(0, 86400 * 30), 1800, 'Seconds of x-expires on fanout and reply queues.'),
    rabbit_qos_prefetch_count: opt(int(0, 65535), 0, 'AMQP prefetch; 0 = executor_thread_pool_size.'),
    rabbit_quorum_queue: opt(bool, false, 'Declare the topic queues as quorum queues (x-queue-type: quorum; implies durable).'),
    rabbit_quorum_delivery_limit: opt(int(0, 1 << 30), 0, 'x-delivery-limit of the quorum queues: redeliveries before a message is dropped; 0 = none.'),
    rabbit_quroum_max_memory_length: opt(int(0, 1 << 30), 0, 'x-max-in-memory-length of the quorum queues (oslo spells the option so); 0 = none.'),
    rabbit_quroum_max_memory_bytes: opt(int(0, 2 ** 40), 0, 'x-max-in-memory-bytes of the quorum queues (oslo spells the option so); 0 = none.'),
    rabbit_ha_queues: opt(bool, false, 'Declare every queue with x-ha-policy: all (mirrored queues); not together with rabbit_quorum_queue.'),
    kombu_failover_strategy: opt(z.enum(['round-robin', 'shuffle']), 'round-robin', 'How the next RabbitMQ host of transport_url is chosen after a failure.'),
    heartbeat_timeout_threshold: opt(int(0, 3600), 60, 'AMQP heartbeat in seconds; 0 disables it.'),
    rabbit_retry_interval: opt(num(0.1, 60), 1, 'Seconds before the first reconnection attempt.'),
    rabbit_retry_backoff: opt(num(0, 60), 2, 'Seconds added to the reconnect delay after each failed attempt.'),
    rabbit_interval_max: opt(num(1, 300), 30, 'Maximum seconds between reconnection attempts.'),
  },
  oslo_messaging_notifications: {
    driver: opt(list.pipe(z.array(z.enum(['messagingv2', 'messaging', 'noop', 'log']))), [],
      'Notification drivers (oslo\'s option): messagingv2 (oslo envelope 2.0), messaging (bare 1.0 JSON), log, noop; empty = none sent.'),
    topics: opt(list, ['notifications'], 'Topics of the legacy (unversioned) notifications; messages go to <topic>.<priority>.'),
    transport_url: opt(z.union([z.literal(''), str.regex(/^rabbit:\/\//, 'must be a rabbit:// URL')]), '',
      'RabbitMQ for notifications; empty = [DEFAULT] transport_url.'),
  },
  notifications: {
    notification_format: opt(z.enum(['unversioned', 'versioned', 'both']), 'unversioned',
      'Which notifications are sent, as Nova\'s option: unversioned (legacy), versioned, or both.'),
    versioned_notifications_topics: opt(list, ['versioned_notifications'], 'Topics of the versioned notifications.'),
  },
  consoleauth: {
    token_ttl: opt(int(1, 86400 * 7), 600, 'Seconds a console token stays valid.'),
  },
  vnc: {
    enabled: opt(bool, true, 'Hand out VNC consoles.'),
    novncproxy_base_url: opt(str.url(), 'http://127.0.0.1:6080/vnc_auto.html', 'Base URL of the noVNC console proxy handed to users.'),
    novncproxy_host: opt(str, '127.0.0.1', 'Address novamon-novncproxy listens on.'),
    novncproxy_port: opt(int(1, 65535), 6080, 'Port novamon-novncproxy listens on.'),
    server_proxyclient_address: opt(str, '127.0.0.1', 'Address the console proxy uses to reach guests\' VNC servers on this host.'),
  },
  serial_console: {
    enabled: opt(bool, false, 'Hand out serial consoles (guests with a TCP serial port).'),
    base_url: opt(str.url(), 'ws://127.0.0.1:6083/', 'Base URL of the serial console proxy handed to users.'),
    proxyclient_address: opt(str, '127.0.0.1', 'Address the serial proxy uses to reach guests on this host.'),
    serialproxy_host: opt(str, '127.0.0.1', 'Address novamon-serialproxy listens on.'),
    serialproxy_port: opt(int(1, 65535), 6083, 'Port novamon-serialproxy listens on.'),
  },
  api: {
    auth_strategy: opt(z.enum(['keystone', 'noauth2']), 'keystone', 'keystone (token validation) or noauth2 (development only).'),
    enable_monitor_passthrough: opt(bool, false, 'Serve the novamon monitor passthrough extension (admin only).'),
    max_request_body_size: opt(int(1024, 1 << 30), 114688, 'Largest request body accepted, in bytes (oslo\'s default).'),
  },
  keystone_authtoken: {
    www_authenticate_uri: opt(str, '', 'Public Keystone URL advertised in WWW-Authenticate.'),
    auth_url: opt(str, '', 'Keystone URL used to validate tokens.'),
    auth_type: opt(z.enum(['password']), 'password', 'How the service authenticates to Keystone.'),
    username: opt(str, 'nova', 'Service user.'),
    password: opt(str, '', 'Service user\'s password.'),
    project_name: opt(str, 'service', 'Service project.'),
    user_domain_name: opt(str, 'Default', 'Service user\'s domain.'),
    project_domain_name: opt(str, 'Default', 'Service project\'s domain.'),
    token_cache_time: opt(int(0, 86400), 300, 'Seconds a validated token is cached (never past its expiry).'),
  },
  oslo_middleware: {
    enabled: opt(bool, false, 'novamon-compute: serve /healthcheck and /metrics.'),
    listen: opt(str, '127.0.0.1', 'Address of the novamon-compute health and metrics listener.'),
    port: opt(int(1, 65535), 8775, 'Port of the novamon-compute health and metrics listener.'),
  },
} satisfies Record<string, Record<string, OptionSpec>>;

export type Options = typeof options;
export type SectionName = keyof Options;
export type Config = {
  -readonly [S in SectionName]: { -readonly [K in keyof Options[S]]: Options[S][K] extends OptionSpec<infer T> ? z.output<T> : never };
};
