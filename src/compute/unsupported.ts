// Nova's instance operations this compute host does not perform (the guests' disks, images, networks and
// volumes are not novamon's). A real Nova control plane still sends them: `openstack server suspend`,
// `delete`, `rescue`, `image create` set a task_state and cast to the host. nova-compute with a driver
// that lacks an operation answers with NotImplementedError through its manager's decorators, and so does
// novamon: the event `compute_<method>` finished as Error, an instance fault, task_state back to None
// where Nova's method reverts it, an error notification, and for a call the failure reply. Without this
// the server would stay in its task_state until an admin reset it.
//
// Where Nova's manager does more than its decorators (checked against python3-nova, Zed): a failed
// terminate sets ERROR, and so does this. A failed rescue also sets ERROR in Nova, because its driver may
// have half-rescued the guest; novamon touched nothing, so the server keeps its state. Soft delete and
// restore fall back to power off / on in Nova; here they are refused with the rest, as nothing would
// reclaim a soft-deleted server later (no _reclaim_queued_deletes).

/** One operation, with what Nova's manager method does around it (nova/compute/manager.py, Zed). */
export interface UnsupportedOperation {
  method: string;
  /** The instance action (nova/compute/instance_actions.py) the event belongs to. */
  action: string;
  /** The method's keyword arguments, for oslo's TypeError on any other. */
  params: readonly string[];
  /** wrap_instance_event: the event is recorded (else only wrap_instance_fault's fault, task_state reverted). */
  event: boolean;
  /** reverts_task_state. */
  revertsTaskState: boolean;
  /** The failure also puts the instance in vm_state ERROR (terminate_instance's do_terminate_instance). */
  errorState?: boolean;
}

const op = (method: string, action: string, params: readonly string[], more: Partial<UnsupportedOperation> = {}): UnsupportedOperation => ({
  method,
  action,
  params,
  event: true,
  revertsTaskState: true,
  ...more,
});

export const UNSUPPORTED_OPERATIONS: readonly UnsupportedOperation[] = [
  op('terminate_instance', 'delete', ['instance', 'bdms'], { errorState: true }),
  op('soft_delete_instance', 'delete', ['instance']),
  op('restore_instance', 'restore', ['instance']),
  op('rebuild_instance', 'rebuild', [
    'instance', 'orig_image_ref', 'image_ref', 'injected_files', 'new_pass', 'orig_sys_metadata', 'bdms', 'recreate',
    'on_shared_storage', 'preserve_ephemeral', 'migration', 'scheduled_node', 'limits', 'request_spec', 'accel_uuids', 'reimage_boot_volume',
  ]),
  op('snapshot_instance', 'createImage', ['image_id', 'instance']),
  op('backup_instance', 'createBackup', ['image_id', 'instance', 'backup_type', 'rotation']),
  op('set_admin_password', 'changePassword', ['instance', 'new_pass']),
  op('rescue_instance', 'rescue', ['instance', 'rescue_password', 'rescue_image_ref', 'clean_shutdown']),
  op('unrescue_instance', 'unrescue', ['instance']),
  op('suspend_instance', 'suspend', ['instance']),
  op('resume_instance', 'resume', ['instance']),
  op('shelve_instance', 'shelve', ['instance', 'image_id', 'clean_shutdown', 'accel_uuids']),
  op('shelve_offload_instance', 'shelveOffload', ['instance', 'clean_shutdown', 'accel_uuids']),
  op('unshelve_instance', 'unshelve', ['instance', 'image', 'filter_properties', 'node', 'request_spec', 'accel_uuids']),
  op('attach_interface', 'attach_interface', ['instance', 'network_id', 'port_id', 'requested_ip', 'tag'], { revertsTaskState: false }),
  op('detach_interface', 'detach_interface', ['instance', 'port_id'], { revertsTaskState: false }),
  op('reserve_block_device_name', 'attach_volume', ['instance', 'device', 'volume_id', 'disk_bus', 'device_type', 'tag', 'multiattach'], { event: false }),
];

/** Consoles Nova may ask for that no novamon guest has: answered ConsoleTypeUnavailable, as a disabled one. */
export const UNAVAILABLE_CONSOLES: readonly string[] = ['get_spice_console', 'get_rdp_console', 'get_mks_console'];
