// Reads what novamon needs from a libvirt domain XML (VNC, serial ports and their logs, disks, NICs),
// parsed with saxes and refusing DTDs; and writes XML only through xmlElement(), which escapes every
// attribute and text.

import { SaxesParser } from 'saxes';

export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  text: string;
}

export class XmlParseError extends Error {
  override readonly name = 'XmlParseError';
}

/**
 * Parses one XML document into its root element, with saxes (a strict, non-validating XML 1.0 parser).
 * A document type declaration is refused outright, so no entity beyond XML's own five and character
 * references is ever defined or expanded. Throws XmlParseError on anything malformed or over `maxLength`.
 */
export function parseXml(xml: string, maxLength = 4 * 1024 * 1024): XmlElement {
  if (xml.length > maxLength) throw new XmlParseError(`XML document longer than ${maxLength} characters`);
  const parser = new SaxesParser({ position: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  parser.on('doctype', () => {
    throw new XmlParseError('DTDs and declarations are not accepted');
  });
  parser.on('opentag', (tag) => {
    // A null-prototype record: attribute names like __proto__ stay plain keys.
    const attrs = Object.assign(Object.create(null) as Record<string, string>, tag.attributes);
    const el: XmlElement = { name: tag.name, attrs, children: [], text: '' };
    const parent = stack.at(-1);
    if (parent) parent.children.push(el);
    else root = el;
    stack.push(el);
  });
  parser.on('closetag', () => void stack.pop());
  const addText = (text: string): void => {
    const top = stack.at(-1);
    if (top) top.text += text;
  };
  parser.on('text', addText);
  parser.on('cdata', addText);
  try {
    parser.write(xml).close();
  } catch (err) {
    if (err instanceof XmlParseError) throw err;
    throw new XmlParseError(err instanceof Error ? err.message : String(err));
  }
  if (!root) throw new XmlParseError('empty document');
  return root;
}

export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

export function children(el: XmlElement | undefined, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name) : [];
}

// ---- writing ------------------------------------------------------------------------------------

export type XmlNode = string | XmlNodeElement;
export interface XmlNodeElement {
  readonly name: string;
  readonly attrs?: Readonly<Record<string, string | number | undefined>>;
  readonly children?: readonly XmlNode[];
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${({ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' } as Record<string, string>)[c]!};`);
}

/** Serialises a tree of elements; every attribute value and text node is escaped. */
export function xmlElement(node: XmlNode): string {
  if (typeof node === 'string') return escapeXml(node);
  if (!/^[A-Za-z_][-A-Za-z0-9_.]*$/.test(node.name)) throw new Error(`invalid element name ${node.name}`);
  const attrs = Object.entries(node.attrs ?? {})
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => {
      if (!/^[A-Za-z_][-A-Za-z0-9_.]*$/.test(k)) throw new Error(`invalid attribute name ${k}`);
      // Whitespace characters are escaped too, or the reader's attribute normalisation would turn them into spaces.
      return ` ${k}="${escapeXml(String(v)).replace(/[\t\n\r]/g, (c) => `&#${c.charCodeAt(0)};`)}"`;
    })
    .join('');
  const kids = node.children ?? [];
  if (kids.length === 0) return `<${node.name}${attrs}/>`;
  return `<${node.name}${attrs}>${kids.map(xmlElement).join('')}</${node.name}>`;
}

// ---- what novamon reads from a domain -----------------------------------------------------------

export interface DomainConfig {
  name: string;
  uuid: string | null;
  /** Domain type: qemu (TCG) or kvm. */
  type: string | null;
  memoryKiB: number | null;
  /** Maximum vCPU count (the `<vcpu>` element). */
  vcpus: number | null;
  /** The balloon's guest-stats period in seconds; 0 when the domain has no balloon or collects no stats. */
  balloonStatsPeriod: number;
  vnc: { port: number | null; listen: string | null } | null;
  /** Serial ports with a host-side TCP server (mode bind), for get_serial_console. */
  tcpSerials: { host: string; port: number }[];
  /** Files holding the guest's serial console output: `<log file>` of a serial/console, or type='file'. */
  consoleLogs: string[];
  disks: { target: string; alias: string | null; source: string | null; device: string }[];
  interfaces: { target: string | null; mac: string | null }[];
}

function intOrNull(s: string | undefined): number | null {
  if (s === undefined || !/^-?\d+$/.test(s)) return null;
  return Number(s);
}

const UNIT_KIB: Record<string, number> = { b: 1 / 1024, bytes: 1 / 1024, k: 1, kib: 1, m: 1024, mib: 1024, g: 1024 ** 2, gib: 1024 ** 2 };

export function parseDomainXml(xml: string): DomainConfig {
  const root = parseXml(xml);
  if (root.name !== 'domain') throw new XmlParseError(`root element is ${root.name}, not domain`);
  const devices = child(root, 'devices');
  const memory = child(root, 'memory');
  const memUnit = (memory?.attrs['unit'] ?? 'KiB').toLowerCase();
  const memValue = intOrNull(memory?.text.trim());
  const graphics = children(devices, 'graphics').find((g) => g.attrs['type'] === 'vnc');
  const balloon = child(devices, 'memballoon');
  const statsPeriod = balloon && balloon.attrs['model'] !== 'none' ? intOrNull(child(balloon, 'stats')?.attrs['period']) : null;

  const consoleLogs: string[] = [];
  const tcpSerials: { host: string; port: number }[] = [];
  for (const port of [...children(devices, 'serial'), ...children(devices, 'console')]) {
    const log = child(port, 'log')?.attrs['file'];
    const source = child(port, 'source');
    if (log) consoleLogs.push(log);
    else if (port.attrs['type'] === 'file' && source?.attrs['path']) consoleLogs.push(source.attrs['path']);
    if (port.name === 'serial' && port.attrs['type'] === 'tcp' && source?.attrs['mode'] === 'bind') {
      const p = intOrNull(source.attrs['service']);
      if (p !== null) tcpSerials.push({ host: source.attrs['host'] ?? '127.0.0.1', port: p });
    }
  }

  return {
    name: child(root, 'name')?.text.trim() ?? '',
    uuid: child(root, 'uuid')?.text.trim() ?? null,
    type: root.attrs['type'] ?? null,
    memoryKiB: memValue === null ? null : Math.round(memValue * (UNIT_KIB[memUnit] ?? 1)),
    vcpus: intOrNull(child(root, 'vcpu')?.text.trim()),
    balloonStatsPeriod: statsPeriod !== null && statsPeriod > 0 ? statsPeriod : 0,
    vnc: graphics
      ? { port: intOrNull(graphics.attrs['port']), listen: graphics.attrs['listen'] ?? child(graphics, 'listen')?.attrs['address'] ?? null }
      : null,
    tcpSerials,
    consoleLogs: [...new Set(consoleLogs)],
    disks: children(devices, 'disk').map((d) => ({
      target: child(d, 'target')?.attrs['dev'] ?? '',
      alias: child(d, 'alias')?.attrs['name'] ?? null,
      source: child(d, 'source')?.attrs['file'] ?? child(d, 'source')?.attrs['dev'] ?? null,
      device: d.attrs['device'] ?? 'disk',
    })),
    interfaces: children(devices, 'interface').map((n) => ({
      target: child(n, 'target')?.attrs['dev'] ?? null,
      mac: child(n, 'mac')?.attrs['address'] ?? null,
    })),
  };
}
