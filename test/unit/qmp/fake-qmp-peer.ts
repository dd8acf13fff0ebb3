// An in-process fake QEMU monitor: a UNIX socket server in a private temp dir that greets, negotiates
// capabilities and then lets each test script the rest (replies in any order, events, garbage, hang-ups),
// for the cases real QEMU cannot be made to produce.

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeCommand {
  execute: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

export interface FakePeerOptions {
  /** Send the greeting on connect (default true). */
  greet?: boolean;
  /** Answer qmp_capabilities with {"return": {}} (default true); otherwise it is queued like any command. */
  negotiate?: boolean;
  /** Called for every command after negotiation; if absent, commands wait in the client's queue. */
  onCommand?: (cmd: FakeCommand, client: FakeClient) => void;
}

export const GREETING = {
  QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: 'Debian 1:7.2+dfsg-7' }, capabilities: ['oob'] },
};

export class FakeClient {
  readonly received: FakeCommand[] = [];
  /** Every byte the client wrote, as written. */
  rawReceived = '';
  readonly #queue: FakeCommand[] = [];
  readonly #waiters: ((c: FakeCommand) => void)[] = [];
  readonly closed: Promise<void>;
  #buf = '';

  constructor(
    readonly socket: net.Socket,
    private readonly opts: FakePeerOptions,
  ) {
    socket.setEncoding('utf8');
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    // As QEMU's parser does: a command ends at the brace that closes its object, newline or not.
    socket.on('data', (chunk: string) => {
      this.rawReceived += chunk;
      this.#buf += chunk;
      let end: number;
      while ((end = objectEnd(this.#buf)) !== -1) {
        const text = this.#buf.slice(0, end);
        this.#buf = this.#buf.slice(end);
        this.#onCommand(JSON.parse(text) as FakeCommand);
      }
    });
    if (opts.greet ?? true) this.send(GREETING);
  }

  send(msg: unknown): void {
    this.socket.write(JSON.stringify(msg) + '\n');
  }

  /** Writes raw text, no newline added. */
  raw(text: string): void {
    this.socket.write(text);
  }

  reply(cmd: FakeCommand, value: unknown = {}): void {
    this.send({ return: value, id: cmd.id });
  }

  fail(cmd: FakeCommand, cls: string, desc: string): void {
    this.send({ id: cmd.id, error: { class: cls, desc } });
  }

  event(name: string, data?: Record<string, unknown>): void {
    this.send({ timestamp: { seconds: 1795564745, microseconds: 480233 }, event: name, ...(data ? { data } : {}) });
  }

  nextCommand(): Promise<FakeCommand> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Closes the connection the way QEMU does when it exits. */
  hangUp(): void {
    this.socket.destroy();
  }

  #onCommand(cmd: FakeCommand): void {
    this.received.push(cmd);
    if (cmd.execute === 'qmp_capabilities' && (this.opts.negotiate ?? true)) {
      this.reply(cmd);
      return;
    }
    if (this.opts.onCommand) {
      this.opts.onCommand(cmd, this);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter(cmd);
    else this.#queue.push(cmd);
  }
}

export class FakeQmpPeer {
  readonly clients: FakeClient[] = [];
  #clientWaiters: (() => void)[] = [];

  private constructor(
    readonly dir: string,
    readonly path: string,
    private readonly server: net.Server,
  ) {}

  static async start(opts: FakePeerOptions = {}): Promise<FakeQmpPeer> {
    const dir = await mkdtemp(join(tmpdir(), 'novamon-qmp-'));
    const path = join(dir, 'x.monitor');
    const server = net.createServer();
    const peer = new FakeQmpPeer(dir, path, server);
    server.on('connection', (socket) => {
      const client = new FakeClient(socket, opts);
      peer.clients.push(client);
      const waiters = peer.#clientWaiters;
      peer.#clientWaiters = [];
      for (const w of waiters) w();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return peer;
  }

  /** The n-th client (0-based) once it has connected. */
  client(n = 0): Promise<FakeClient> {
    return new Promise((resolve) => {
      const check = (): void => {
        const c = this.clients[n];
        if (c) resolve(c);
        else this.#clientWaiters.push(check);
      };
      check();
    });
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Where the first complete JSON object in `buf` ends (leading whitespace included), or -1. */
function objectEnd(buf: string): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}
