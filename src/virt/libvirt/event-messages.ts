// The asynchronous messages libvirtd sends a subscribed client, decoded: domain lifecycle, reboot and
// device hot-plug events (remote program) and QEMU monitor events passed through (libvirt-qemu program), with the calls
// that subscribe a connection to them. Layouts from remote_protocol.x and qemu_protocol.x.

import type { LibvirtConnection } from './connection.js';
import {
  DOMAIN_EVENT_ID_DEVICE_ADDED, DOMAIN_EVENT_ID_DEVICE_REMOVED, DOMAIN_EVENT_ID_LIFECYCLE, DOMAIN_EVENT_ID_REBOOT, QEMU_MONITOR_EVENT_REGISTER_REGEX, QEMU_PROGRAM, QemuProc, readDomain,
  REMOTE_PROGRAM, RemoteProc, type DomainHandle,
} from './protocol.js';
import { type XdrReader, XdrWriter } from './xdr.js';

export interface LifecycleMessage {
  callbackId: number;
  domain: DomainHandle;
  event: number;
  detail: number;
}

/** libvirt's reboot event: the guest reset itself or was reset (no reason given). */
export interface RebootMessage {
  callbackId: number;
  domain: DomainHandle;
}

/** One QMP event of a domain's monitor, as libvirtd relays it: name, QEMU's timestamp, `data` as JSON text. */
export interface MonitorEventMessage {
  callbackId: number;
  domain: DomainHandle;
  event: string;
  seconds: number;
  micros: number;
  /** The event's `data` member serialised by libvirt, or null when it had none. Untrusted. */
  details: string | null;
}

/** A device hot-plugged into or removed from a running domain: its live XML changed. */
export interface DeviceMessage {
  callbackId: number;
  domain: DomainHandle;
  /** The device's alias (untrusted; capped). */
  alias: string;
  added: boolean;
}

export type EventMessage =
  | ({ kind: 'lifecycle' } & LifecycleMessage)
  | ({ kind: 'device' } & DeviceMessage)
  | ({ kind: 'reboot' } & RebootMessage)
  | ({ kind: 'monitor' } & MonitorEventMessage);

/** Decodes an event message we subscribe to; null for any other program or procedure. */
export function decodeEventMessage(prog: number, proc: number, r: XdrReader): EventMessage | null {
  if (prog === REMOTE_PROGRAM && proc === RemoteProc.DOMAIN_EVENT_CALLBACK_LIFECYCLE) {
    return { kind: 'lifecycle', callbackId: r.int(), domain: readDomain(r), event: r.int(), detail: r.int() };
  }
  if (prog === REMOTE_PROGRAM && proc === RemoteProc.DOMAIN_EVENT_CALLBACK_REBOOT) {
    return { kind: 'reboot', callbackId: r.int(), domain: readDomain(r) };
  }
  if (prog === REMOTE_PROGRAM && (proc === RemoteProc.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED || proc === RemoteProc.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED)) {
    const callbackId = r.int();
    const domain = readDomain(r);
    return { kind: 'device', callbackId, domain, alias: r.string().slice(0, 256), added: proc === RemoteProc.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED };
  }
  if (prog === QEMU_PROGRAM && proc === QemuProc.DOMAIN_MONITOR_EVENT) {
    const callbackId = r.int();
    const domain = readDomain(r);
    // A QMP event name is short; the data of the events we act on is small: cap what we hold.
    const event = r.string().slice(0, 64);
    const seconds = Number(r.hyper());
    const micros = r.uint();
    const details = r.optional((x) => x.string());
    return { kind: 'monitor', callbackId, domain, event, seconds, micros, details: details === null ? null : details.slice(0, 64 * 1024) };
  }
  return null;
}

/** Subscribes the connection to one event id (lifecycle, reboot) of every domain; returns libvirt's callback id. */
async function registerDomainEvent(conn: LibvirtConnection, eventId: number): Promise<number> {
  const r = await conn.call(REMOTE_PROGRAM, RemoteProc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
    new XdrWriter().int(eventId).optional(null, () => undefined));
  return r.int();
}

export function registerLifecycleEvents(conn: LibvirtConnection): Promise<number> {
  return registerDomainEvent(conn, DOMAIN_EVENT_ID_LIFECYCLE);
}

/** Device hot-plug and removal of every domain: the live XML we cache changes without a lifecycle event. */
export async function registerDeviceEvents(conn: LibvirtConnection): Promise<void> {
  await registerDomainEvent(conn, DOMAIN_EVENT_ID_DEVICE_ADDED);
  await registerDomainEvent(conn, DOMAIN_EVENT_ID_DEVICE_REMOVED);
}

export function registerRebootEvents(conn: LibvirtConnection): Promise<number> {
  return registerDomainEvent(conn, DOMAIN_EVENT_ID_REBOOT);
}

/**
 * virConnectDomainQemuMonitorEventRegister for every domain, limited to the events whose names match
 * `pattern` (a regular expression libvirtd applies), so the noisy ones never cross the socket.
 */
export async function registerMonitorEvents(conn: LibvirtConnection, pattern: string): Promise<number> {
  const args = new XdrWriter().optional(null, () => undefined).optional(pattern, (w, v) => w.string(v)).uint(QEMU_MONITOR_EVENT_REGISTER_REGEX);
  return (await conn.call(QEMU_PROGRAM, QemuProc.CONNECT_DOMAIN_MONITOR_EVENT_REGISTER, args)).int();
}

export async function deregisterEvents(conn: LibvirtConnection, callbackId: number): Promise<void> {
  await conn.call(REMOTE_PROGRAM, RemoteProc.CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY, new XdrWriter().int(callbackId));
}
