// The libvirt RPC client against an in-process fake libvirtd on a UNIX socket: framing split across
// writes, replies matched by serial, error replies, timeouts, keepalive, events, garbage, and how
// LibvirtHost/LibvirtGuest turn each into Nova exceptions. Cases a real libvirtd will not produce on demand.

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HypervisorUnavailable, InstanceNotFound, InstanceNotRunning, InternalError, MonitorCommandFailed, MonitorTimeout } from '../../../src/exception.js';
import { silentLogger } from '../../../src/logging.js';
import { LibvirtConnection, LibvirtConnectionError, LibvirtRpcError, LibvirtTimeoutError } from '../../../src/virt/libvirt/connection.js';
import { LibvirtGuest } from '../../../src/virt/libvirt/guest.js';
import { LibvirtHost, socketPathForUri } from '../../../src/virt/libvirt/host.js';
import {
  decodeHeader, DOMAIN_EVENT_ID_DEVICE_ADDED, DOMAIN_EVENT_ID_DEVICE_REMOVED, DOMAIN_EVENT_ID_LIFECYCLE, encodeMessage, KEEPALIVE_PROGRAM, MessageType, QEMU_PROGRAM, readDomain, REMOTE_PROGRAM, RemoteProc, writeDomain,
  type DomainHandle, type MessageHeader,
} from '../../../src/virt/libvirt/protocol.js';
import { XdrReader, XdrWriter } from '../../../src/virt/libvirt/xdr.js';

const DOM: DomainHandle = { name: 'instance-00000001', uuid: Buffer.alloc(16, 7), id: 3 };

type Handler = (h: MessageHeader, args: XdrReader, sock: net.Socket) => { ok: XdrWriter } | { error: [number, string] } | 'silent';

/** A fake libvirtd: answers AUTH_LIST and CONNECT_OPEN itself, everything else through `handlers`. */
class FakeLibvirtd {
  readonly handlers = new Map<string, Handler>();
  readonly received: MessageHeader[] = [];
  sockets: net.Socket[] = [];
  /** Write replies one byte at a time, to exercise reassembly. */
  trickle = false;
  private server = net.createServer((s) => this.onClient(s));
  constructor(readonly path: string) {}

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(this.path, r));
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  reply(sock: net.Socket, h: MessageHeader, status: number, payload: Buffer): void {
    const msg = encodeMessage({ ...h, type: MessageType.REPLY, status }, payload);
    if (!this.trickle) sock.write(msg);
    else for (const b of msg) sock.write(Buffer.from([b]));
  }

  private onClient(sock: net.Socket): void {
    this.sockets.push(sock);
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const r = new XdrReader(buf.subarray(4, len));
        buf = buf.subarray(len);
        const h = decodeHeader(r);
        this.received.push(h);
        if (h.prog === REMOTE_PROGRAM && h.proc === RemoteProc.AUTH_LIST) {
          this.reply(sock, h, 0, new XdrWriter().array([0], (w, v) => w.int(v)).toBuffer());
          continue;
        }
        if (h.prog === REMOTE_PROGRAM && (h.proc === RemoteProc.CONNECT_OPEN || h.proc === RemoteProc.CONNECT_CLOSE)) {
          this.reply(sock, h, 0, Buffer.alloc(0));
          continue;
        }
        const handler = this.handlers.get(`${h.prog}:${h.proc}`);
        const out = handler ? handler(h, r, sock) : ({ error: [3, `no support for ${h.proc}`] } as const);
        if (out === 'silent') continue;
        if ('ok' in out) this.reply(sock, h, 0, out.ok.toBuffer());
        else {
          const [code, message] = out.error;
          const e = new XdrWriter().int(code).int(10).optional(message, (w, v) => w.string(v)).int(2)
            .bool(false).bool(false).bool(false).bool(false).int(0).int(0).bool(false);
          this.reply(sock, h, 1, e.toBuffer());
        }
      }
    });
  }
}

let dir: string;
let fake: FakeLibvirtd;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'novamon-fake-libvirtd-'));
  fake = new FakeLibvirtd(path.join(dir, 'libvirt-sock'));
  await fake.listen();
});

afterEach(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

function open(callTimeoutMs = 1000): Promise<LibvirtConnection> {
  return LibvirtConnection.open({ socketPath: fake.path, uri: 'qemu:///system', connectTimeoutMs: 1000, callTimeoutMs });
}

function domReply(): { ok: XdrWriter } {
  const w = new XdrWriter();
  writeDomain(w, DOM);
  return { ok: w };
}

describe('LibvirtConnection', () => {
  it('authenticates, opens, and decodes replies even when they arrive a byte at a time', async () => {
    fake.trickle = true;
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_LOOKUP_BY_NAME}`, (_h, r) => {
      expect(r.string()).toBe('instance-00000001');
      return domReply();
    });
    const c = await open();
    expect(fake.received.slice(0, 2).map((h) => h.proc)).toEqual([RemoteProc.AUTH_LIST, RemoteProc.CONNECT_OPEN]);
    expect(await c.lookupByName('instance-00000001')).toEqual(DOM);
    await c.close();
  });

  it('matches concurrent replies by serial, whatever their order', async () => {
    const pending: [MessageHeader, net.Socket, string][] = [];
    fake.handlers.set(`${QEMU_PROGRAM}:1`, (h, r, sock) => {
      readDomain(r);
      pending.push([h, sock, r.string()]);
      if (pending.length === 3) {
        for (const [ph, ps, cmd] of pending.reverse()) fake.reply(ps, ph, 0, new XdrWriter().string(`reply to ${cmd}`).toBuffer());
      }
      return 'silent';
    });
    const c = await open();
    const replies = await Promise.all(['a', 'b', 'c'].map((cmd) => c.monitorCommand(DOM, cmd, 0)));
    expect(replies).toEqual(['reply to a', 'reply to b', 'reply to c']);
    await c.close();
  });

  it('error replies carry libvirt\'s code and message; silence times out; a late reply is ignored', async () => {
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_LOOKUP_BY_NAME}`, () => ({ error: [42, 'Domain not found'] }));
    let late: (() => void) | null = null;
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_GET_STATE}`, (h, _r, sock) => {
      late = () => fake.reply(sock, h, 0, new XdrWriter().int(1).int(1).toBuffer());
      return 'silent';
    });
    const c = await open(200);
    const err = await c.lookupByName('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtRpcError);
    expect((err as LibvirtRpcError).code).toBe(42);
    expect((err as Error).message).toBe('Domain not found');
    await expect(c.getState(DOM)).rejects.toBeInstanceOf(LibvirtTimeoutError);
    late!();
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_LOOKUP_BY_NAME}`, () => domReply());
    expect(await c.lookupByName('x')).toEqual(DOM);
    await c.close();
  });

  it('answers keepalive pings and delivers lifecycle events', async () => {
    const c = await open();
    const events: unknown[] = [];
    c.onEvent((m) => events.push(m));
    const sock = fake.sockets[0]!;
    sock.write(encodeMessage({ prog: KEEPALIVE_PROGRAM, vers: 1, proc: 1, type: MessageType.MESSAGE, serial: 0, status: 0 }, Buffer.alloc(0)));
    const ev = new XdrWriter().int(5);
    writeDomain(ev, DOM);
    ev.int(3).int(0);
    sock.write(encodeMessage({ prog: REMOTE_PROGRAM, vers: 1, proc: RemoteProc.DOMAIN_EVENT_CALLBACK_LIFECYCLE, type: MessageType.MESSAGE, serial: 0, status: 0 }, ev.toBuffer()));
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.received.some((h) => h.prog === KEEPALIVE_PROGRAM && h.proc === 2)).toBe(true);
    expect(events).toEqual([{ kind: 'lifecycle', callbackId: 5, domain: DOM, event: 3, detail: 0 }]);
    await c.close();
  });

  it('garbage from the server or a dropped socket fails every pending call at once', async () => {
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_GET_STATE}`, (_h, _r, sock) => {
      sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      return 'silent';
    });
    const c = await open(5000);
    const closed = new Promise((r) => c.onClose(r));
    const started = Date.now();
    await expect(c.getState(DOM)).rejects.toBeInstanceOf(LibvirtConnectionError);
    await closed;
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(c.getState(DOM)).rejects.toBeInstanceOf(LibvirtConnectionError);
  });

  it('refuses to connect to a socket nobody listens on', async () => {
    await expect(LibvirtConnection.open({ socketPath: path.join(dir, 'none'), uri: 'qemu:///system', connectTimeoutMs: 500, callTimeoutMs: 500 }))
      .rejects.toBeInstanceOf(LibvirtConnectionError);
  });
});

describe('LibvirtHost and LibvirtGuest error mapping', () => {
  function host(callTimeoutMs = 300): LibvirtHost {
    return new LibvirtHost({ uri: `qemu+unix:///system?socket=${fake.path}`, connectTimeoutMs: 500, callTimeoutMs, logger: silentLogger() });
  }

  it('derives socket paths from local URIs and refuses remote ones', () => {
    expect(socketPathForUri('qemu:///system')).toBe('/var/run/libvirt/libvirt-sock');
    expect(socketPathForUri('qemu+unix:///system?socket=/x/y')).toBe('/x/y');
    expect(() => socketPathForUri('qemu+ssh://h/system')).toThrow(/unsupported/);
  });

  it('maps libvirt errors to Nova exceptions', async () => {
    const h = host();
    const g = new LibvirtGuest(h, DOM, 'uuid-1');
    const cases: [[number, string], unknown][] = [
      [[42, 'Domain not found'], InstanceNotFound],
      [[55, 'Requested operation is not valid: domain is not running'], InstanceNotRunning],
      [[68, 'Timed out during operation: cannot acquire state change lock'], MonitorTimeout],
      [[9, 'operation failed: something'], InternalError],
    ];
    for (const [error, cls] of cases) {
      fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.DOMAIN_SUSPEND}`, () => ({ error }));
      await expect(g.suspend()).rejects.toBeInstanceOf(cls);
    }
    await h.close();
  });

  it('the passthrough reports QEMU errors and libvirt refusals as MonitorCommandFailed', async () => {
    const h = host();
    const g = new LibvirtGuest(h, DOM, 'uuid-1');
    let answer: { ok: XdrWriter } | { error: [number, string] } = { ok: new XdrWriter().string('{"id":"libvirt-1","error":{"class":"CommandNotFound","desc":"nope"}}') };
    fake.handlers.set(`${QEMU_PROGRAM}:1`, () => answer);
    const qemuErr = await g.qmp('bogus').catch((e: unknown) => e);
    expect(qemuErr).toBeInstanceOf(MonitorCommandFailed);
    expect(qemuErr).toMatchObject({ errorClass: 'CommandNotFound', desc: 'nope' });

    answer = { error: [1, "internal error: Unable to append command 'id' string"] };
    const refused = await g.qmp('query-status').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MonitorCommandFailed);
    expect(refused).toMatchObject({ errorClass: 'libvirt', desc: "internal error: Unable to append command 'id' string" });

    answer = { error: [55, 'Requested operation is not valid: domain is not running'] };
    await expect(g.hmp('info status')).rejects.toBeInstanceOf(InstanceNotRunning);

    answer = { ok: new XdrWriter().string('{"return":{"status":"running"},"id":"libvirt-2"}') };
    expect(await g.qmp('query-status')).toEqual({ status: 'running' });
    await h.close();
  });

  it('a silent libvirtd gives MonitorTimeout; an absent one HypervisorUnavailable', async () => {
    const h = host(200);
    fake.handlers.set(`${QEMU_PROGRAM}:1`, () => 'silent');
    const started = Date.now();
    await expect(new LibvirtGuest(h, DOM, 'uuid-1').qmp('query-status')).rejects.toBeInstanceOf(MonitorTimeout);
    expect(Date.now() - started).toBeLessThan(1000);
    await h.close();
    const gone = new LibvirtHost({ uri: `qemu+unix:///system?socket=${path.join(dir, 'none')}`, connectTimeoutMs: 200, callTimeoutMs: 200, logger: silentLogger() });
    await expect(gone.lookup('instance-00000001')).rejects.toBeInstanceOf(HypervisorUnavailable);
    await gone.close();
  });

  it('re-registers for events after libvirtd comes back', async () => {
    // Lifecycle registrations counted (device added/removed are registered beside each one).
    let registrations = 0;
    const eventIds: number[] = [];
    fake.handlers.set(`${REMOTE_PROGRAM}:${RemoteProc.CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY}`, (_h, r) => {
      const eventId = r.int();
      eventIds.push(eventId);
      if (eventId === DOMAIN_EVENT_ID_LIFECYCLE) registrations++;
      return { ok: new XdrWriter().int(eventIds.length) };
    });
    const h = new LibvirtHost({ uri: `qemu+unix:///system?socket=${fake.path}`, connectTimeoutMs: 500, callTimeoutMs: 500, logger: silentLogger(), reconnectDelayMs: 50 });
    await h.startEvents();
    expect(registrations).toBe(1);
    for (const s of fake.sockets) s.destroy();
    const deadline = Date.now() + 3000;
    while (registrations < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(registrations).toBe(2);
    expect(eventIds.slice(0, 3)).toEqual([DOMAIN_EVENT_ID_LIFECYCLE, DOMAIN_EVENT_ID_DEVICE_ADDED, DOMAIN_EVENT_ID_DEVICE_REMOVED]);
    await h.close();
  });
});
