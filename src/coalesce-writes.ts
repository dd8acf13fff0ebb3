// Writes to a socket coalesced per event-loop turn: everything one turn writes leaves in one writev(2),
// one segment for the peer to read, instead of one write(2) per frame or command. Used on the AMQP socket
// (replies, acks and calls under load) and on QMP monitor sockets (the commands of one diagnostics call).

import type { Writable } from 'node:stream';

/**
 * Cork `socket` from the first write of a turn until the end of that turn. Nothing waits past the turn
 * it was written in, and back-pressure is unchanged: write() still returns false past the high-water
 * mark, and 'drain' follows the flush.
 */
export function coalesceWrites(socket: Writable): void {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: unknown[]): boolean => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write(...args);
  }) as Writable['write'];
}
