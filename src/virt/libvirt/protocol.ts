// The part of libvirt's private RPC protocol (src/rpc/virnetprotocol.x, src/remote/remote_protocol.x,
// src/remote/qemu_protocol.x) that novamon speaks: message framing, program and procedure numbers, and
// the XDR layouts of the few structs we send and receive. Numbers were checked against libvirtd 9.0.

import { type XdrReader, XdrWriter } from './xdr.js';

export const REMOTE_PROGRAM = 0x20008086;
export const QEMU_PROGRAM = 0x20008087;
export const KEEPALIVE_PROGRAM = 0x6b656570;
export const PROTOCOL_VERSION = 1;

/** Length word + header; libvirt caps a whole message at 16 MiB + 4. */
export const HEADER_SIZE = 24;
export const MAX_MESSAGE = 16 * 1024 * 1024 + 4;

export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3, CALL_WITH_FDS: 4, REPLY_WITH_FDS: 5 } as const;
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

export const RemoteProc = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  DOMAIN_CREATE: 9,
  DOMAIN_CREATE_XML: 10,
  DOMAIN_DEFINE_XML: 11,
  DOMAIN_DESTROY: 12,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_GET_VCPUS: 20,
  DOMAIN_LOOKUP_BY_NAME: 23,
  DOMAIN_LOOKUP_BY_UUID: 24,
  DOMAIN_REBOOT: 27,
  DOMAIN_RESUME: 28,
  DOMAIN_SUSPEND: 34,
  AUTH_LIST: 66,
  AUTH_POLKIT: 70,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_INJECT_NMI: 210,
  DOMAIN_SCREENSHOT: 211,
  DOMAIN_GET_STATE: 212,
  DOMAIN_UNDEFINE_FLAGS: 231,
  DOMAIN_DESTROY_FLAGS: 234,
  DOMAIN_RESET: 245,
  DOMAIN_SHUTDOWN_FLAGS: 258,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_EVENT_CALLBACK_REBOOT: 319,
  DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: 333,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
  DOMAIN_EVENT_CALLBACK_DEVICE_ADDED: 354,
} as const;

export const QemuProc = {
  DOMAIN_MONITOR_COMMAND: 1,
  CONNECT_DOMAIN_MONITOR_EVENT_REGISTER: 4,
  CONNECT_DOMAIN_MONITOR_EVENT_DEREGISTER: 5,
  DOMAIN_MONITOR_EVENT: 6,
} as const;
export const KeepaliveProc = { PING: 1, PONG: 2 } as const;

/** virDomainState. */
export const DomainState = {
  NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7,
} as const;

/** virDomainEventType (lifecycle) and the STOPPED details we distinguish. */
export const DomainEvent = {
  DEFINED: 0, UNDEFINED: 1, STARTED: 2, SUSPENDED: 3, RESUMED: 4, STOPPED: 5, SHUTDOWN: 6, PMSUSPENDED: 7, CRASHED: 8,
} as const;
export const StoppedDetail = { SHUTDOWN: 0, DESTROYED: 1, CRASHED: 2, MIGRATED: 3, SAVED: 4, FAILED: 5, FROM_SNAPSHOT: 6 } as const;
/** virDomainEventCrashedDetailType and virDomainEventShutdownDetailType (libvirt 3.4+ says who shut down). */
export const CrashedDetail = { PANICKED: 0, CRASHLOADED: 1 } as const;
export const ShutdownDetail = { FINISHED: 0, GUEST: 1, HOST: 2 } as const;
export const DOMAIN_EVENT_ID_LIFECYCLE = 0;
export const DOMAIN_EVENT_ID_REBOOT = 1;
/** virDomainEventID of a device hot-unplugged (after the guest released it) and hot-plugged. */
export const DOMAIN_EVENT_ID_DEVICE_REMOVED = 15;
export const DOMAIN_EVENT_ID_DEVICE_ADDED = 19;
/** virConnectDomainQemuMonitorEventRegisterFlags: the event name is a regular expression. */
export const QEMU_MONITOR_EVENT_REGISTER_REGEX = 1;

/** virDomainStatsTypes bits for CONNECT_GET_ALL_DOMAIN_STATS. */
export const StatsType = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8, INTERFACE: 16, BLOCK: 32 } as const;
/** virConnectGetAllDomainStatsFlags NOWAIT: a domain busy with a job reports what needs no job instead of waiting. */
export const STATS_NOWAIT = 1 << 29;

/** remote_auth_type. */
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

export const SHUTDOWN_ACPI_POWER_BTN = 1;
export const QEMU_MONITOR_COMMAND_HMP = 1;

/** virErrorNumber values we act on. */
export const ErrorCode = {
  INTERNAL_ERROR: 1, NO_SUPPORT: 3, NO_CONNECT: 5, INVALID_ARG: 8, OPERATION_FAILED: 9, RPC: 39,
  NO_DOMAIN: 42, OPERATION_INVALID: 55, OPERATION_TIMEOUT: 68,
} as const;

export interface MessageHeader {
  prog: number;
  vers: number;
  proc: number;
  type: number;
  serial: number;
  status: number;
}

export function encodeMessage(header: MessageHeader, payload: Buffer): Buffer {
  const total = 4 + HEADER_SIZE + payload.length;
  const w = new XdrWriter()
    .uint(total)
    .uint(header.prog)
    .uint(header.vers)
    .int(header.proc)
    .int(header.type)
    .uint(header.serial)
    .int(header.status);
  return Buffer.concat([w.toBuffer(), payload]);
}

/** Decodes the header of one framed message (the buffer starts after the length word). */
export function decodeHeader(r: XdrReader): MessageHeader {
  return { prog: r.uint(), vers: r.uint(), proc: r.int(), type: r.int(), serial: r.uint(), status: r.int() };
}

/** remote_nonnull_domain: libvirt's handle for a domain (the server looks it up by uuid). */
export interface DomainHandle {
  readonly name: string;
  /** 16 raw bytes. */
  readonly uuid: Buffer;
  /** Runtime id; -1 while shut off. */
  readonly id: number;
}

export function writeDomain(w: XdrWriter, d: DomainHandle): void {
  w.string(d.name).fixedOpaque(d.uuid, 16).int(d.id);
}

export function readDomain(r: XdrReader): DomainHandle {
  return { name: r.string(), uuid: r.fixedOpaque(16), id: r.int() };
}

export function uuidToString(uuid: Buffer): string {
  const h = uuid.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidFromString(s: string): Buffer | null {
  const hex = s.replace(/-/g, '');
  return /^[0-9a-fA-F]{32}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}

/** remote_error / virNetMessageError, trimmed to what we report. */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
}

export function readRemoteError(r: XdrReader): RemoteError {
  const code = r.int();
  const domain = r.int();
  const message = r.optional((x) => x.string());
  const level = r.int();
  // dom, str1..3, int1, int2, net follow; nothing in them that we use.
  return { code, domain, message, level };
}

export type TypedParamValue = number | bigint | boolean | string;

/** remote_typed_param list (used by the bulk stats API). 64-bit counters stay bigint until converted. */
export function readTypedParams(r: XdrReader): Map<string, TypedParamValue> {
  const out = new Map<string, TypedParamValue>();
  const n = r.uint();
  if (n > 1 << 16) throw new Error(`too many typed parameters: ${n}`);
  for (let i = 0; i < n; i++) {
    const field = r.string();
    const type = r.int();
    let value: TypedParamValue;
    switch (type) {
      case 1: value = r.int(); break;
      case 2: value = r.uint(); break;
      case 3: value = r.hyper(); break;
      case 4: value = r.uhyper(); break;
      case 5: value = r.double(); break;
      case 6: value = r.int() !== 0; break;
      case 7: value = r.string(); break;
      default: throw new Error(`unknown typed parameter type ${type} for ${field}`);
    }
    out.set(field, value);
  }
  return out;
}
