// Reads what novamon needs from a libvirt domain XML (VNC, serial ports and their logs, disks, NICs),
// with a small XML parser that understands elements, attributes, text and the predefined entities and
// refuses DTDs; and writes XML only through xmlElement(), which escapes every attribute and text.

export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  text: string;
}

export class XmlParseError extends Error {
  override readonly name = 'XmlParseError';
}

const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const ENTITY: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(Number.parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(Number.parseInt(e.slice(1), 10));
    const v = ENTITY[e];
    if (v === undefined) throw new XmlParseError(`unknown entity ${m}`);
    return v;
  });
}

/** Parses one XML document into its root element. Throws XmlParseError on anything malformed. */
export function parseXml(xml: string, maxLength = 4 * 1024 * 1024): XmlElement {
  if (xml.length > maxLength) throw new XmlParseError(`XML document longer than ${maxLength} characters`);
  let i = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;

  const readName = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(xml);
    if (!m) throw new XmlParseError(`expected a name at offset ${i}`);
    i += m[0].length;
    return m[0];
  };
  const skipSpace = (): void => {
    while (i < xml.length && /\s/.test(xml[i]!)) i++;
  };
  const skipPast = (end: string): void => {
    const j = xml.indexOf(end, i);
    if (j < 0) throw new XmlParseError(`unterminated construct, expected ${end}`);
    i = j + end.length;
  };

  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textEnd = lt < 0 ? xml.length : lt;
    if (textEnd > i) {
      const raw = xml.slice(i, textEnd);
      const top = stack.at(-1);
      if (top) top.text += decodeEntities(raw);
      else if (raw.trim() !== '') throw new XmlParseError('text outside the root element');
    }
    if (lt < 0) break;
    i = lt;
    if (xml.startsWith('<?', i)) skipPast('?>');
    else if (xml.startsWith('<!--', i)) skipPast('-->');
    else if (xml.startsWith('<![CDATA[', i)) {
      const j = xml.indexOf(']]>', i);
      if (j < 0) throw new XmlParseError('unterminated CDATA');
      const top = stack.at(-1);
      if (!top) throw new XmlParseError('CDATA outside the root element');
      top.text += xml.slice(i + 9, j);
      i = j + 3;
    } else if (xml.startsWith('<!', i)) {
      throw new XmlParseError('DTDs and declarations are not accepted');
    } else if (xml.startsWith('</', i)) {
      i += 2;
      const name = readName();
      skipSpace();
      if (xml[i] !== '>') throw new XmlParseError(`malformed end tag ${name}`);
      i++;
      const open = stack.pop();
      if (!open || open.name !== name) throw new XmlParseError(`end tag ${name} does not match ${open?.name ?? 'nothing'}`);
    } else {
      i++;
      const name = readName();
      const attrs: Record<string, string> = Object.create(null) as Record<string, string>;
      for (;;) {
        skipSpace();
        if (xml.startsWith('/>', i) || xml[i] === '>') break;
        const attr = readName();
        skipSpace();
        if (xml[i] !== '=') throw new XmlParseError(`attribute ${attr} has no value`);
        i++;
        skipSpace();
        const quote = xml[i];
        if (quote !== '"' && quote !== "'") throw new XmlParseError(`attribute ${attr} is not quoted`);
        const end = xml.indexOf(quote, i + 1);
        if (end < 0) throw new XmlParseError(`unterminated attribute ${attr}`);
        const value = xml.slice(i + 1, end);
        if (value.includes('<')) throw new XmlParseError(`'<' in attribute ${attr}`);
        if (attr in attrs) throw new XmlParseError(`duplicate attribute ${attr}`);
        attrs[attr] = decodeEntities(value);
        i = end + 1;
      }
      const el: XmlElement = { name, attrs, children: [], text: '' };
      const parent = stack.at(-1);
      if (parent) parent.children.push(el);
      else if (root) throw new XmlParseError('more than one root element');
      else root = el;
      if (xml.startsWith('/>', i)) i += 2;
      else {
        i++;
        stack.push(el);
      }
    }
  }
  if (stack.length > 0) throw new XmlParseError(`unclosed element ${stack.at(-1)!.name}`);
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
