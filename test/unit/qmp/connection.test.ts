// QmpConnection against a scripted fake monitor: handshake, id correlation, events, protocol errors,
// timeouts, hang-ups and connect failures.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QmpConnection, type QmpEvent } from '../../../src/qmp/connection.js';
import { QmpConnectError, QmpDisconnectedError, QmpError, QmpTimeoutError } from '../../../src/qmp/errors.js';
import { FakeQmpPeer, type FakePeerOptions } from './fake-qmp-peer.js';

let peer: FakeQmpPeer | undefined;
let conn: QmpConnection | undefined;

afterEach(async () => {
  await conn?.close();
  conn = undefined;
  await peer?.stop();
  peer = undefined;
});

async function setup(opts: FakePeerOptions = {}, maxLineLength?: number) {
  peer = await FakeQmpPeer.start(opts);
  conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 2000, commandTimeoutMs: 2000, ...(maxLineLength ? { maxLineLength } : {}) });
  const client = await peer.client();
  return { peer, conn, client };
}

describe('QmpConnection handshake', () => {
  it('parses the greeting and negotiates capabilities before anything else', async () => {
    const { conn, client } = await setup({ onCommand: (cmd, c) => c.reply(cmd, { status: 'running', running: true }) });
    expect(conn.greeting).toEqual({ version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'Debian 1:7.2+dfsg-7' }, capabilities: ['oob'] });
    expect(conn.socketPath).toBe(peer!.path);
    expect(conn.closed).toBe(false);
    await expect(conn.execute('query-status')).resolves.toEqual({ status: 'running', running: true });
    expect(client.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'query-status']);
    // Not asking for oob: the negotiation carries no arguments.
    expect(client.received[0]!.arguments).toBeUndefined();
  });

  it('fails with ENOENT when the socket does not exist', async () => {
    peer = await FakeQmpPeer.start();
    const err = await QmpConnection.connect(join(peer.dir, 'missing.monitor'), { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ENOENT');
    expect((err as QmpConnectError).socketPath).toBe(join(peer.dir, 'missing.monitor'));
  });

  it('fails with ECONNREFUSED when the path is not a listening socket', async () => {
    peer = await FakeQmpPeer.start();
    const path = join(peer.dir, 'stale.monitor');
    await writeFile(path, '');
    const err = await QmpConnection.connect(path, { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ECONNREFUSED');
  });

  it('times out when no greeting comes (monitor busy with another client) and drops the socket', async () => {
    peer = await FakeQmpPeer.start({ greet: false });
    const started = Date.now();
    const err = await QmpConnection.connect(peer.path, { connectTimeoutMs: 150 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ETIMEDOUT');
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1000);
    const client = await peer.client();
    await client.closed; // our side destroyed the socket
  });

  it('fails when capabilities negotiation is refused', async () => {
    peer = await FakeQmpPeer.start({ negotiate: false, onCommand: (cmd, c) => c.fail(cmd, 'GenericError', 'nope') });
    const err = await QmpConnection.connect(peer.path, { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).message).toContain('nope');
    await (await peer.client()).closed;
  });

  it('fails when capabilities negotiation gets no reply within the connect timeout', async () => {
    peer = await FakeQmpPeer.start({ negotiate: false });
    const err = await QmpConnection.connect(peer.path, { connectTimeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ETIMEDOUT');
  });

  it('fails on a first message that is not a QMP greeting', async () => {
    peer = await FakeQmpPeer.start({ greet: false });
    const pending = QmpConnection.connect(peer.path, { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    (await peer.client()).send({ hello: 'world' });
    const err = await pending;
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('EPROTO');
  });

  it('fails promptly when the peer hangs up before greeting', async () => {
    peer = await FakeQmpPeer.start({ greet: false });
    const pending = QmpConnection.connect(peer.path, { connectTimeoutMs: 5000 }).catch((e: unknown) => e);
    (await peer.client()).hangUp();
    const err = await pending;
    expect(err).toBeInstanceOf(QmpConnectError);
    expect((err as QmpConnectError).code).toBe('ECONNRESET');
  });

  it('gives up when aborted', async () => {
    peer = await FakeQmpPeer.start({ greet: false });
    const abort = new AbortController();
    const pending = QmpConnection.connect(peer.path, { connectTimeoutMs: 5000, signal: abort.signal }).catch((e: unknown) => e);
    await peer.client();
    abort.abort();
    const err = await pending;
    expect((err as QmpConnectError).code).toBe('ABORT_ERR');
  });
});

describe('QmpConnection commands', () => {
  it('writes each command bare (no id, whitespace or newline) and matches replies in the order QEMU gives them', async () => {
    const { conn, client } = await setup();
    const a = conn.execute('query-a');
    const b = conn.execute('query-b', { x: 1 });
    const c = conn.execute('query-c');
    const cmds = [await client.nextCommand(), await client.nextCommand(), await client.nextCommand()];
    expect(client.rawReceived).toBe('{"execute":"qmp_capabilities"}{"execute":"query-a"}{"execute":"query-b","arguments":{"x":1}}{"execute":"query-c"}');
    expect(conn.pendingCount).toBe(3);
    client.reply(cmds[0]!, 'A');
    client.fail(cmds[1]!, 'GenericError', 'B refused');
    client.reply(cmds[2]!, 'C');
    await expect(a).resolves.toBe('A');
    await expect(b).rejects.toMatchObject({ command: 'query-b', desc: 'B refused' });
    await expect(c).resolves.toBe('C');
    expect(conn.pendingCount).toBe(0);
  });

  it('refuses, unwritten, a command QEMU\'s parser would answer with errors of its own', async () => {
    const { conn, client } = await setup({ onCommand: (cmd, c) => c.reply(cmd, 'ok') });
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    await expect(conn.execute('x', { deep })).rejects.toThrow(/nests deeper than 64/);
    await expect(conn.execute('x', { big: 'a'.repeat(2 * 1024 * 1024) })).rejects.toThrow(/over 1048576/);
    // Brackets inside strings are data, not nesting.
    await expect(conn.execute('x', { s: '[[[[{{{{\\"'.repeat(100) })).resolves.toBe('ok');
    expect(client.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'x']);
  });

  it('handles several messages in one chunk and a message split across chunks', async () => {
    const { conn, client } = await setup();
    const events: string[] = [];
    conn.on('event', (e) => events.push(e.event));
    const a = conn.execute('a');
    const b = conn.execute('b');
    const [ca, cb] = [await client.nextCommand(), await client.nextCommand()];
    const text =
      JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } }) +
      '\n' +
      JSON.stringify({ return: { ü: 'ünïcödé ✓' }, id: ca.id }) +
      '\n' +
      JSON.stringify({ return: 2, id: cb.id }) +
      '\n';
    // First half in one write with the rest byte by byte, to cut lines and multi-byte characters.
    const bytes = Buffer.from(text);
    client.socket.write(bytes.subarray(0, 10));
    for (let i = 10; i < bytes.length; i++) client.socket.write(bytes.subarray(i, i + 1));
    await expect(a).resolves.toEqual({ ü: 'ünïcödé ✓' });
    await expect(b).resolves.toBe(2);
    expect(events).toEqual(['STOP']);
  });

  it('delivers an event written before the reply of the command that caused it', async () => {
    const seen: string[] = [];
    const { conn } = await setup({
      onCommand: (cmd, c) => {
        c.event('STOP');
        c.reply(cmd);
      },
    });
    let event: QmpEvent | undefined;
    conn.on('event', (e) => {
      event = e;
      seen.push('event');
    });
    await conn.execute('stop');
    seen.push('reply');
    expect(seen).toEqual(['event', 'reply']);
    expect(event).toEqual({ event: 'STOP', timestamp: { seconds: 1795564745, microseconds: 480233 } });
  });

  it('passes event data through', async () => {
    const { conn, client } = await setup();
    const got = new Promise<QmpEvent>((resolve) => conn.once('event', resolve));
    client.event('RESET', { guest: false, reason: 'host-qmp-system-reset' });
    expect((await got).data).toEqual({ guest: false, reason: 'host-qmp-system-reset' });
  });

  it('rejects with QmpError carrying class, desc and command', async () => {
    const { conn } = await setup({ onCommand: (cmd, c) => c.fail(cmd, 'CommandNotFound', `The command ${cmd.execute} has not been found`) });
    const err = await conn.execute('bogus').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ errorClass: 'CommandNotFound', desc: 'The command bogus has not been found', command: 'bogus' });
    expect(conn.closed).toBe(false);
  });

  it('sends HMP through human-monitor-command', async () => {
    const { conn, client } = await setup({ onCommand: (cmd, c) => c.reply(cmd, 'VM status: running\r\n') });
    await expect(conn.hmp('info status')).resolves.toBe('VM status: running\r\n');
    expect(client.received[1]).toMatchObject({ execute: 'human-monitor-command', arguments: { 'command-line': 'info status' } });
  });

  it('ignores replies with an id (novamon sends none) and replies with nothing waiting, and keeps working', async () => {
    const { conn, client } = await setup();
    client.send({ return: 'nothing waits for this' });
    await new Promise((r) => setTimeout(r, 20));
    const p = conn.execute('query-status');
    const cmd = await client.nextCommand();
    client.send({ return: 'stranger', id: 'not-ours' });
    client.send({ return: 'stranger', id: 9999 });
    client.reply(cmd, 'mine');
    await expect(p).resolves.toBe('mine');
    expect(conn.closed).toBe(false);
  });

  it('does not let a throwing event listener break the connection', async () => {
    const { conn, client } = await setup({ onCommand: (cmd, c) => c.reply(cmd, 'ok') });
    conn.on('event', () => {
      throw new Error('listener bug');
    });
    client.event('STOP');
    await expect(conn.execute('query-status')).resolves.toBe('ok');
  });

  it('rejects a timed-out command, discards its late reply, and serves later commands', async () => {
    const { conn, client } = await setup();
    const slow = conn.execute('slow', undefined, { timeoutMs: 50 }).catch((e: unknown) => e);
    const slowCmd = await client.nextCommand();
    // The timeout is followed by a liveness ping, which QEMU answers after the slow command (it answers
    // in order): the late reply must not be taken for the ping's, and this is a plain timeout.
    const ping = await client.nextCommand();
    expect(ping.execute).toBe('query-version');
    expect(conn.pendingCount).toBe(1);
    const next = conn.execute('fast');
    const nextCmd = await client.nextCommand();
    client.reply(slowCmd, 'late');
    client.reply(ping, {});
    const err = await slow;
    expect(err).toBeInstanceOf(QmpTimeoutError);
    expect(err).toMatchObject({ command: 'slow', timeoutMs: 50, unresponsive: false });
    expect(conn.unresponsive).toBe(false);
    client.reply(nextCmd, 'on time');
    await expect(next).resolves.toBe('on time');
    expect(conn.pendingCount).toBe(0);
    expect(conn.closed).toBe(false);
  });

  it('after a timeout whose liveness ping also goes unanswered, fails later commands at once and unwritten until QEMU speaks', async () => {
    peer = await FakeQmpPeer.start();
    conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 1000, commandTimeoutMs: 100, livenessTimeoutMs: 100 });
    const client = await peer.client();
    const t0 = performance.now();
    const first = await conn.execute('query-status').catch((e: unknown) => e);
    expect(first).toMatchObject({ name: 'QmpTimeoutError', command: 'query-status', unresponsive: true });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(conn.unresponsive).toBe(true);
    // Detected once: the next calls cost nothing and never reach the frozen monitor.
    const t1 = performance.now();
    for (const cmd of ['query-status', 'query-blockstats', 'stop']) {
      await expect(conn.execute(cmd)).rejects.toMatchObject({ name: 'QmpTimeoutError', unresponsive: true });
    }
    expect(performance.now() - t1).toBeLessThan(50);
    expect(client.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'query-status', 'query-version']);
    // QEMU thaws and answers in order: the late query-status, then the ping; the connection is back,
    // with no reconnect.
    const late = await client.nextCommand();
    expect(late.execute).toBe('query-status');
    const ping = await client.nextCommand();
    expect(ping.execute).toBe('query-version');
    client.reply(late, { status: 'paused' });
    client.reply(ping, { qemu: { major: 7 } });
    await new Promise((r) => setTimeout(r, 20));
    expect(conn.unresponsive).toBe(false);
    const again = conn.execute('query-status');
    client.reply(await client.nextCommand(), { status: 'running' });
    await expect(again).resolves.toEqual({ status: 'running' });
    expect(conn.closed).toBe(false);
  });

  it('applies the default command timeout', async () => {
    peer = await FakeQmpPeer.start();
    conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 1000, commandTimeoutMs: 60 });
    await expect(conn.execute('never-answered')).rejects.toBeInstanceOf(QmpTimeoutError);
  });

  it('rejects arguments that cannot be serialised without touching the connection', async () => {
    const { conn } = await setup({ onCommand: (cmd, c) => c.reply(cmd, 'ok') });
    await expect(conn.execute('x', { n: 1n })).rejects.toThrow(TypeError);
    await expect(conn.execute('y')).resolves.toBe('ok');
  });
});

describe('QmpConnection loss', () => {
  it('rejects every pending command promptly when the peer closes mid-command', async () => {
    const { conn, client } = await setup();
    const closes: string[] = [];
    conn.on('close', (r) => closes.push(r));
    const pending = [conn.execute('a'), conn.execute('b'), conn.hmp('info status')].map((p) => p.catch((e: unknown) => e));
    await client.nextCommand();
    const started = Date.now();
    client.hangUp();
    const errors = await Promise.all(pending);
    expect(Date.now() - started).toBeLessThan(100);
    for (const e of errors) expect(e).toBeInstanceOf(QmpDisconnectedError);
    expect((errors[0] as QmpDisconnectedError).command).toBe('a');
    await new Promise((r) => setTimeout(r, 20));
    expect(closes).toHaveLength(1);
    expect(conn.closed).toBe(true);
    const started2 = Date.now();
    await expect(conn.execute('after')).rejects.toBeInstanceOf(QmpDisconnectedError);
    expect(Date.now() - started2).toBeLessThan(20);
  });

  it('treats a non-JSON line as a protocol error: closes and rejects pending', async () => {
    const { conn, client } = await setup();
    const closed = new Promise<string>((resolve) => conn.once('close', resolve));
    const p = conn.execute('a').catch((e: unknown) => e);
    await client.nextCommand();
    client.raw('this is not json\n');
    const err = await p;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect((err as QmpDisconnectedError).reason).toMatch(/protocol error/);
    expect(await closed).toMatch(/not JSON/);
    await client.closed;
  });

  it('treats a JSON value that is not an object as a protocol error', async () => {
    const { conn, client } = await setup();
    const closed = new Promise<string>((resolve) => conn.once('close', resolve));
    client.raw('[1,2,3]\n');
    expect(await closed).toMatch(/not a JSON object/);
  });

  it('treats an oversized line as a protocol error, even before its newline arrives', async () => {
    const { conn, client } = await setup({}, 1024);
    const p = conn.execute('a').catch((e: unknown) => e);
    await client.nextCommand();
    client.raw('{"return": "' + 'x'.repeat(2000)); // no newline: must not wait for one
    const err = await p;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect((err as QmpDisconnectedError).reason).toMatch(/exceeds/);
  });

  it('by default closes the connection on a reply line over 10 MiB, as libvirt caps replies at 10 MB', async () => {
    peer = await FakeQmpPeer.start();
    conn = await QmpConnection.connect(peer.path, { connectTimeoutMs: 2000, commandTimeoutMs: 30_000 });
    const client = await peer.client();
    const p = conn.execute('query-blockstats').catch((e: unknown) => e);
    const cmd = await client.nextCommand();
    const chunk = 'x'.repeat(1024 * 1024);
    client.raw(`{"id": ${String(cmd.id)}, "return": "`);
    for (let i = 0; i < 11; i++) client.raw(chunk);
    const err = await p;
    expect(err).toBeInstanceOf(QmpDisconnectedError);
    expect((err as QmpDisconnectedError).reason).toMatch(/reply line of \d+\+ characters exceeds the 10485760 limit/);
    expect(conn.closed).toBe(true);
  });

  it('close() rejects pending commands, emits close once and hangs up', async () => {
    const { conn, client } = await setup();
    const closes: string[] = [];
    conn.on('close', (r) => closes.push(r));
    const p = conn.execute('a').catch((e: unknown) => e);
    await client.nextCommand();
    await conn.close();
    await conn.close(); // idempotent
    expect(await p).toBeInstanceOf(QmpDisconnectedError);
    expect(closes).toEqual(['connection closed by client']);
    await client.closed;
  });
});
