// Pure parts of the libvirt driver: XDR round trips, the small XML parser and writer, the domain XML
// reader, and the mapping of libvirt lifecycle events and states to Nova's.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDomainXml, parseXml, xmlElement, XmlParseError } from '../../../src/virt/libvirt/domain-xml.js';
import { lifecycleEventFromLibvirt } from '../../../src/virt/libvirt/events.js';
import { powerStateFromLibvirt } from '../../../src/virt/libvirt/guest.js';
import { uuidFromString, uuidToString } from '../../../src/virt/libvirt/protocol.js';
import { XdrError, XdrReader, XdrWriter } from '../../../src/virt/libvirt/xdr.js';
import { PowerState } from '../../../src/virt/power-state.js';

const LIBVIRT_XML = `<domain type='qemu' id='7'>
  <name>instance-0000000a</name>
  <uuid>2c16c75d-9598-44bb-8ae2-d7f84bf7514c</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>2</vcpu>
  <!-- a comment -->
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/nova/instances/x/disk' index='1'/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <interface type='bridge'><mac address='fa:16:3e:00:00:01'/><target dev='tap1234'/></interface>
    <serial type='pty'>
      <source path='/dev/pts/0'/>
      <log file='/var/lib/nova/instances/x/console.log' append='off'/>
      <target type='isa-serial' port='0'/>
    </serial>
    <serial type='tcp'>
      <source mode='bind' host='127.0.0.1' service='10000'/>
      <target port='1'/>
    </serial>
    <console type='pty' tty='/dev/pts/0'>
      <log file='/var/lib/nova/instances/x/console.log' append='off'/>
    </console>
    <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <memballoon model='virtio'><stats period='10'/><alias name='balloon0'/></memballoon>
  </devices>
</domain>`;

describe('XDR', () => {
  it('round-trips every type it writes', () => {
    fc.assert(fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.string(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.uint8Array({ maxLength: 40 }), fc.option(fc.string()),
      (i, s, h, bytes, opt) => {
        const w = new XdrWriter().int(i).string(s).hyper(h).opaque(bytes).optional(opt, (x, v) => x.string(v)).array([1, 2, 3], (x, v) => x.uint(v));
        const buf = w.toBuffer();
        expect(buf.length % 4).toBe(0);
        const r = new XdrReader(buf);
        expect(r.int()).toBe(i);
        expect(r.string()).toBe(s);
        expect(r.hyper()).toBe(h);
        expect([...r.opaque()]).toEqual([...bytes]);
        expect(r.optional((x) => x.string())).toBe(opt);
        expect(r.array((x) => x.uint())).toEqual([1, 2, 3]);
        expect(r.remaining).toBe(0);
      }));
  });

  it('refuses truncated data and absurd lengths instead of reading past the buffer', () => {
    expect(() => new XdrReader(Buffer.from([0, 0, 0, 9, 65])).string()).toThrow(XdrError);
    expect(() => new XdrReader(Buffer.from([0xff, 0xff, 0xff, 0xff])).opaque()).toThrow(/exceeds/);
    expect(() => new XdrReader(Buffer.from([0, 0, 0, 2])).bool()).toThrow(XdrError);
  });

  it('formats and parses uuids', () => {
    const u = '2c16c75d-9598-44bb-8ae2-d7f84bf7514c';
    expect(uuidToString(uuidFromString(u)!)).toBe(u);
    expect(uuidFromString('nope')).toBeNull();
  });
});

describe('XML', () => {
  it('reads what the driver needs from a libvirt domain XML', () => {
    const c = parseDomainXml(LIBVIRT_XML);
    expect(c).toMatchObject({
      name: 'instance-0000000a',
      uuid: '2c16c75d-9598-44bb-8ae2-d7f84bf7514c',
      type: 'qemu',
      memoryKiB: 65536,
      vcpus: 2,
      balloonStatsPeriod: 10,
      vnc: { port: 5901, listen: '127.0.0.1' },
      tcpSerials: [{ host: '127.0.0.1', port: 10000 }],
      consoleLogs: ['/var/lib/nova/instances/x/console.log'],
      disks: [{ target: 'vda', alias: 'virtio-disk0', source: '/var/lib/nova/instances/x/disk', device: 'disk' }],
      interfaces: [{ target: 'tap1234', mac: 'fa:16:3e:00:00:01' }],
    });
  });

  it('a serial port of type file is a console log; no VNC and no port mean none', () => {
    const c = parseDomainXml(`<domain type="kvm"><name>n</name><memory unit="MiB">64</memory><devices>
      <serial type="file"><source path="/tmp/a&amp;b.log"/></serial><graphics type="spice"/></devices></domain>`);
    expect(c.consoleLogs).toEqual(['/tmp/a&b.log']);
    expect(c.vnc).toBeNull();
    expect(c.memoryKiB).toBe(65536);
    // No balloon, or one that collects no guest stats: nothing to ask the guest.
    expect(c.balloonStatsPeriod).toBe(0);
    const none = parseDomainXml(`<domain><name>n</name><devices><memballoon model="none"><stats period="5"/></memballoon></devices></domain>`);
    expect(none.balloonStatsPeriod).toBe(0);
    expect(none.vcpus).toBeNull();
  });

  it('refuses DTDs (no entity expansion), mismatched tags and junk', () => {
    expect(() => parseXml('<!DOCTYPE d [<!ENTITY x "y">]><d>&x;</d>')).toThrow(XmlParseError);
    expect(() => parseXml('<a><b></a></b>')).toThrow(XmlParseError);
    expect(() => parseXml('<a x=1/>')).toThrow(XmlParseError);
    expect(() => parseXml('<a>&foo;</a>')).toThrow(XmlParseError);
    expect(() => parseXml('<a/><b/>')).toThrow(XmlParseError);
    expect(() => parseXml('')).toThrow(XmlParseError);
  });

  it('writing escapes attributes and text, so any string survives a round trip', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (attr, text) => {
      // XML 1.0 cannot carry most control characters at all; libvirt names never contain them.
      fc.pre([...(attr + text)].every((ch) => {
        const c = ch.codePointAt(0)!;
        return (c >= 0x20 || c === 0x09 || c === 0x0a) && c !== 0xfffe && c !== 0xffff;
      }));
      const xml = xmlElement({ name: 'domain', attrs: { type: attr }, children: [{ name: 'name', children: [text] }] });
      const el = parseXml(xml);
      expect(el.attrs['type']).toBe(attr);
      expect(el.children[0]?.text).toBe(text);
    }));
    expect(xmlElement({ name: 'a', attrs: { v: `"'<>&` }, children: ['</a><b>'] })).toBe('<a v="&quot;&apos;&lt;&gt;&amp;">&lt;/a&gt;&lt;b&gt;</a>');
    expect(() => xmlElement({ name: 'a b' })).toThrow();
  });
});

describe('libvirt states and events', () => {
  it('maps virDomainState to Nova power states', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 99].map(powerStateFromLibvirt)).toEqual([
      PowerState.NOSTATE, PowerState.RUNNING, PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTDOWN,
      PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.SUSPENDED, PowerState.NOSTATE,
    ]);
  });

  it('maps lifecycle events as Nova does and ignores the rest', () => {
    const ev = (e: number, d = 0) => lifecycleEventFromLibvirt('instance-00000001', 'u', e, d, 5);
    expect(ev(2)).toMatchObject({ transition: 'started', powerState: PowerState.RUNNING, source: 'libvirt:STARTED/0', timestamp: 5 });
    expect(ev(3)).toMatchObject({ transition: 'paused', powerState: PowerState.PAUSED });
    expect(ev(4)).toMatchObject({ transition: 'resumed', powerState: PowerState.RUNNING });
    expect(ev(5, 1)).toMatchObject({ transition: 'stopped', powerState: PowerState.SHUTDOWN, source: 'libvirt:STOPPED/destroyed' });
    expect(ev(5, 2)).toMatchObject({ transition: 'crashed', powerState: PowerState.CRASHED });
    expect(ev(7)).toMatchObject({ transition: 'suspended', powerState: PowerState.SUSPENDED });
    expect(ev(8)).toMatchObject({ transition: 'crashed' });
    for (const ignored of [0, 1, 6, 42]) expect(ev(ignored)).toBeNull();
  });
});
