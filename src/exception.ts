// Nova's exceptions, as novamon raises them. Each class knows the Python module and class name a Nova
// client rebuilds it from (oslo's failure format), the kwargs Nova formats its message with, and the
// HTTP code Nova's API maps it to. Lower layers (virt, qmp adapters) throw these; rpc/ serialises them.

export type ExceptionKwargs = Record<string, string | number | boolean | null>;

export abstract class NovaException extends Error {
  /** Python module the class lives in on the Nova side. */
  readonly module: string = 'nova.exception';
  /** HTTP status Nova's API answers with for this exception. */
  readonly code: number = 500;
  readonly kwargs: ExceptionKwargs;

  protected constructor(message: string, kwargs: ExceptionKwargs = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.kwargs = kwargs;
  }

  /** Python class name on the wire; defaults to the TypeScript class name, which mirrors Nova's. */
  get className(): string {
    return this.constructor.name;
  }

  override get name(): string {
    return this.className;
  }
}

export class InstanceNotFound extends NovaException {
  override readonly code = 404;
  constructor(instanceId: string, options?: { cause?: unknown }) {
    super(`Instance ${instanceId} could not be found.`, { instance_id: instanceId }, options);
  }
}

export class InstanceNotRunning extends NovaException {
  override readonly code = 409;
  constructor(instanceId: string, options?: { cause?: unknown }) {
    super(`Instance ${instanceId} is not running.`, { instance_id: instanceId }, options);
  }
}

export class InstanceNotReady extends NovaException {
  override readonly code = 409;
  constructor(instanceId: string, options?: { cause?: unknown }) {
    super(`Instance ${instanceId} has not been scheduled.`, { instance_id: instanceId }, options);
  }
}

/** Nova: "Instance %(instance_uuid)s in %(attr)s %(state)s. Cannot %(method)s while the instance is in this state." */
export class InstanceInvalidState extends NovaException {
  override readonly code = 409;
  constructor(instanceUuid: string, attr: string, state: string, method: string, options?: { cause?: unknown }) {
    super(
      `Instance ${instanceUuid} in ${attr} ${state}. Cannot ${method} while the instance is in this state.`,
      { instance_uuid: instanceUuid, attr, state, method },
      options,
    );
  }
}

export class ConsoleTypeInvalid extends NovaException {
  override readonly code = 400;
  constructor(consoleType: string) {
    super(`Invalid console type ${consoleType}`, { console_type: consoleType });
  }
}

export class ConsoleTypeUnavailable extends NovaException {
  override readonly code = 400;
  constructor(consoleType: string) {
    super(`Unavailable console type ${consoleType}.`, { console_type: consoleType });
  }
}

export class ConsoleNotAvailable extends NovaException {
  override readonly code = 404;
  constructor(options?: { cause?: unknown }) {
    super('Guest does not have a console available.', {}, options);
  }
}

/** Nova: "Invalid instance name %(name)s". Raised before any file is touched. */
export class InvalidInstanceName extends NovaException {
  override readonly code = 400;
  constructor(name: string, reason: string) {
    super(`Invalid instance name ${JSON.stringify(name).slice(0, 80)}: ${reason}`, { name: name.slice(0, 80) });
  }
}

/** Nova's generic hypervisor failure; the message carries what the hypervisor said. */
export class HypervisorUnavailable extends NovaException {
  override readonly code = 503;
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super(`Connection to the hypervisor is broken on host ${host}: ${reason}`, { host }, options);
  }
}

/** Nova: InternalError; used for QEMU/libvirt command failures that have no better Nova name. */
export class InternalError extends NovaException {
  constructor(err: string, options?: { cause?: unknown }) {
    super(err, { err }, options);
  }
}

/** Raised by a monitor command that QEMU answered with an error: carries QEMU's class and desc. */
export class MonitorCommandFailed extends NovaException {
  override readonly code = 400;
  constructor(
    readonly errorClass: string,
    readonly desc: string,
    options?: { cause?: unknown },
  ) {
    super(`Monitor command failed: ${errorClass}: ${desc}`, { err: `${errorClass}: ${desc}` }, options);
  }
  override get className(): string {
    return 'InternalError';
  }
}

/** A monitor (or hypervisor) call that did not answer within its timeout. */
export class MonitorTimeout extends NovaException {
  override readonly code = 504;
  /** `unresponsive`: refused at once, the monitor having answered neither a command nor the liveness ping after it. */
  constructor(instanceName: string, seconds: number, options?: { cause?: unknown; unresponsive?: boolean }) {
    const why = options?.unresponsive ? ': unresponsive since an earlier timeout (no answer to a liveness ping)' : ` after ${seconds} s`;
    super(`Timeout waiting for the monitor of ${instanceName}${why}`, { err: `timeout${why}` }, options);
  }
  override get className(): string {
    return 'InternalError';
  }
}

/** Nova: Forbidden / PolicyNotAuthorized. */
export class PolicyNotAuthorized extends NovaException {
  override readonly code = 403;
  constructor(action: string) {
    super(`Policy doesn't allow ${action} to be performed.`, { action });
  }
}

/** Nova: Invalid. A request argument that fails validation. */
export class Invalid extends NovaException {
  override readonly code = 400;
  constructor(message: string) {
    super(message, {});
  }
}

/** NotImplementedError is a Python builtin: a Nova client rebuilds it from module `builtins`. */
export class NotImplementedByDriver extends NovaException {
  override readonly module = 'builtins';
  override readonly code = 501;
  constructor(what: string) {
    super(`${what} is not implemented by this driver`, {});
  }
  override get className(): string {
    return 'NotImplementedError';
  }
}
