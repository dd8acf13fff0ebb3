// Socket writes coalesced per event-loop turn (AMQP and QMP sockets): what one turn writes leaves in one writev,
// in order, with back-pressure and 'drain' as a plain socket has them.
import net from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../src/coalesce-writes.js';

/** A sink that records each batch the stream hands down (one entry per write(2) a socket would make). */
function recordingSink(highWaterMark = 16 * 1024): { sink: Writable; batches: string[][] } {
  const batches: string[][] = [];
  const sink = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      batches.push([chunk.toString()]);
      setImmediate(cb);
    },
    writev(chunks, cb) {
      batches.push(chunks.map((c) => (c.chunk as Buffer).toString()));
      setImmediate(cb);
    },
  });
  return { sink, batches };
}

describe('coalesceWrites', () => {
  it('sends what one turn wrote in one batch, in order, and the next turn in another', async () => {
    const { sink, batches } = recordingSink();
    coalesceWrites(sink);
    sink.write(Buffer.from('reply-1'));
    sink.write(Buffer.from('ack-1'));
    sink.write(Buffer.from('reply-2'));
    expect(batches).toEqual([]); // nothing leaves before the turn ends
    await nextTurn();
    expect(batches).toEqual([['reply-1', 'ack-1', 'reply-2']]);
    sink.write(Buffer.from('ack-2'));
    await nextTurn();
    await nextTurn();
    expect(batches).toEqual([['reply-1', 'ack-1', 'reply-2'], ['ack-2']]);
  });

  it('keeps back-pressure: write() says false past the high-water mark and drain follows the flush', async () => {
    const { sink, batches } = recordingSink(64);
    coalesceWrites(sink);
    expect(sink.write(Buffer.alloc(40, 'a'))).toBe(true);
    expect(sink.write(Buffer.alloc(40, 'b'))).toBe(false);
    const drained = new Promise<void>((resolve) => sink.once('drain', resolve));
    await drained;
    expect(batches.flat().join('')).toBe('a'.repeat(40) + 'b'.repeat(40));
  });

  it('delivers every byte in order over a real TCP socket', async () => {
    const received: Buffer[] = [];
    const server = net.createServer((s) => s.on('data', (d: Buffer) => received.push(d)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise<void>((resolve) => client.once('connect', resolve));
    coalesceWrites(client);
    const expected: string[] = [];
    for (let turn = 0; turn < 50; turn++) {
      for (let i = 0; i < 1 + (turn % 7); i++) {
        const frame = `t${turn}f${i};`;
        expected.push(frame);
        client.write(Buffer.from(frame));
      }
      await nextTurn();
    }
    await new Promise<void>((resolve) => client.end(resolve));
    for (let i = 0; i < 100 && Buffer.concat(received).length < expected.join('').length; i++) await nextTurn();
    server.close();
    expect(Buffer.concat(received).toString()).toBe(expected.join(''));
  });
});
