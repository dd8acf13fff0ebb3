// `novamon-manage console`: a terminal on a guest's serial console through a serial console proxy
// (novamon-serialproxy or Nova's nova-serialproxy), as `virsh console` gives one on a libvirt host. What
// the guest writes goes to stdout as it comes; what is typed goes to the guest, a terminal in raw mode so
// every key reaches it. Ctrl-] leaves, as in virsh and telnet.

import type { Readable, Writable } from 'node:stream';
import { WebSocket, type RawData } from 'ws';

/** Ctrl-]: the escape that ends the session (virsh console's default). */
export const ESCAPE = 0x1d;

export interface ConsoleIo {
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable;
  stderr: Writable;
}

/** The session ended: `by` says who ended it; `code` is the WebSocket close code when the proxy closed it. */
export interface ConsoleEnd {
  by: 'escape' | 'input-ended' | 'proxy';
  code: number | null;
}

/** A refusal from the proxy before the session opened (HTTP status and its text). */
export class ConsoleRefusedByProxy extends Error {
  override readonly name = 'ConsoleRefusedByProxy';
  constructor(
    readonly status: number,
    readonly text: string,
  ) {
    super(`the console proxy refused the session: HTTP ${status}${text ? `: ${text}` : ''}`);
  }
}

/** Only a WebSocket console URL is dialled: this is a URL a compute host handed out, not a path to trust blindly. */
export function checkConsoleUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`not a console URL: ${JSON.stringify(url.slice(0, 200))}`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new Error(`a serial console URL is ws:// or wss://, not ${parsed.protocol}`);
  return parsed;
}

/** Opens the session and runs it until Ctrl-], the end of input, or the proxy closing it. */
export function attachSerialConsole(url: string, io: ConsoleIo, label: string): Promise<ConsoleEnd> {
  const target = checkConsoleUrl(url);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, ['binary'], { handshakeTimeout: 15_000 });
    let opened = false;
    let ending: ConsoleEnd['by'] | null = null;
    const raw = io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';

    const onInput = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const esc = bytes.indexOf(ESCAPE);
      const before = esc < 0 ? bytes : bytes.subarray(0, esc);
      if (before.length > 0 && ws.readyState === WebSocket.OPEN) ws.send(before, { binary: true });
      if (esc >= 0) finish('escape');
    };
    const onInputEnd = (): void => finish('input-ended');
    const finish = (by: ConsoleEnd['by']): void => {
      ending ??= by;
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    };
    const release = (): void => {
      io.stdin.off('data', onInput);
      io.stdin.off('end', onInputEnd);
      if (raw) io.stdin.setRawMode?.(false);
      io.stdin.pause();
    };

    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString('utf8')));
      res.on('end', () => reject(new ConsoleRefusedByProxy(res.statusCode ?? 0, text.trim().slice(0, 300))));
    });
    ws.on('error', (err) => {
      if (!opened) reject(err);
    });
    ws.on('open', () => {
      opened = true;
      io.stderr.write(`Connected to ${label} (escape character is ^])\n`);
      if (raw) io.stdin.setRawMode?.(true);
      io.stdin.on('data', onInput);
      io.stdin.once('end', onInputEnd);
      io.stdin.resume();
    });
    ws.on('message', (data: RawData) => {
      io.stdout.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    });
    ws.on('close', (code) => {
      if (!opened) return;
      release();
      const end: ConsoleEnd = { by: ending ?? 'proxy', code: ending ? null : code };
      io.stderr.write(end.by === 'proxy' ? `\nThe console proxy closed the session (${code}).\n` : '\n');
      resolve(end);
    });
  });
}
