// Console access for QEMU guests: the serial log file (read, never consumed, last MAX_CONSOLE_BYTES as
// Nova's libvirt driver does) and the VNC / TCP serial endpoints from query-vnc and query-chardev.
// ringbuf-read is deliberately not used: it is destructive, so a second reader would see nothing.

import type { ConsoleEndpoint } from '../driver.js';

/** Every `logfile=` of a `-chardev` in a QEMU command line, serial ports first. */
export function consoleLogFilesFromCmdline(argv: readonly string[]): string[] {
  const serial: string[] = [];
  const other: string[] = [];
  argv.forEach((arg, i) => {
    if (argv[i - 1] !== '-chardev' && argv[i - 1] !== '-serial') return;
    const parts = arg.split(',');
    const log = parts.find((p) => p.startsWith('logfile='))?.slice('logfile='.length);
    if (!log) return;
    const id = parts.find((p) => p.startsWith('id='))?.slice(3) ?? '';
    (/serial|console/.test(id) || argv[i - 1] === '-serial' ? serial : other).push(log);
  });
  return [...serial, ...other];
}

export { readTail } from '../console-log.js';

export interface QueryVncReply {
  enabled: boolean;
  host?: string;
  service?: string;
  family?: string;
}

/**
 * The VNC endpoint from query-vnc, or null when VNC is off. A wildcard listen address is replaced by
 * `proxyClientAddress` (Nova's vnc.server_proxyclient_address), the address the proxy reaches us on.
 */
export function vncEndpoint(reply: QueryVncReply, proxyClientAddress: string): ConsoleEndpoint | null {
  if (!reply.enabled || !reply.service) return null;
  const port = Number(reply.service);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  const host = !reply.host || reply.host === '0.0.0.0' || reply.host === '::' ? proxyClientAddress : reply.host;
  return { host, port, internalAccessPath: null };
}

export interface ChardevInfo {
  label: string;
  filename: string;
}

/**
 * The TCP endpoint of the guest's serial chardev from query-chardev, or null when no serial port is
 * served over TCP. QEMU shows a listening socket as `disconnected:tcp:H:P,server=on` until a client connects.
 */
export function serialEndpoint(chardevs: readonly ChardevInfo[], proxyClientAddress: string): ConsoleEndpoint | null {
  const candidates = chardevs
    .filter((c) => /serial|console/.test(c.label))
    .sort((a, b) => a.label.localeCompare(b.label));
  for (const c of candidates) {
    const m = /^(?:disconnected:)?tcp:(\[[^\]]+\]|[^:,\s]+):(\d+)/.exec(c.filename);
    if (!m?.[1] || !m[2]) continue;
    const host = m[1].replace(/^\[|\]$/g, '');
    return {
      host: host === '0.0.0.0' || host === '::' ? proxyClientAddress : host,
      port: Number(m[2]),
      internalAccessPath: null,
    };
  }
  return null;
}
