// QMP framing: the monitor speaks newline-delimited JSON. This splits a stream of text chunks into lines
// (a chunk may end mid-line or hold several lines) and parses each line into a JSON object, refusing
// lines over a size cap so a misbehaving peer cannot make us buffer without bound.

/** The peer broke the protocol (oversized line, non-JSON, a JSON value that is not an object). */
export class QmpProtocolError extends Error {
  override readonly name = 'QmpProtocolError';
}

export type QmpMessage = Record<string, unknown>;

/**
 * QEMU's replies are small (the largest novamon asks for, query-blockstats of many disks, are tens of
 * KiB); libvirt caps a monitor reply at 10 MB. A longer line closes the connection rather than buffer it.
 */
export const DEFAULT_MAX_LINE_LENGTH = 10 * 1024 * 1024;

/**
 * Splits decoded text (the socket has setEncoding('utf8'), so multi-byte characters are never cut) into
 * lines and hands each non-blank one to `onLine`. `onLine` is a mutable field so the owner can switch
 * handlers between two lines of the same chunk (greeting handling -> connection). An exception thrown by
 * `onLine` stops the chunk and propagates to the caller of push().
 */
export class QmpLineSplitter {
  #partial = '';

  constructor(
    readonly maxLineLength: number,
    public onLine: (line: string) => void,
  ) {}

  push(chunk: string): void {
    let start = 0;
    let nl = chunk.indexOf('\n');
    while (nl !== -1) {
      let line = chunk.slice(start, nl);
      if (this.#partial.length > 0) {
        line = this.#partial + line;
        this.#partial = '';
      }
      start = nl + 1;
      if (line.length > this.maxLineLength) throw this.#tooLong(line.length);
      if (!isBlank(line)) this.onLine(line);
      nl = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) {
      this.#partial += start === 0 ? chunk : chunk.slice(start);
      // Fail as soon as the unfinished line is too long rather than waiting for its newline.
      if (this.#partial.length > this.maxLineLength) {
        const n = this.#partial.length;
        this.#partial = '';
        throw this.#tooLong(n);
      }
    }
  }

  /** Characters buffered for an unfinished line. */
  get buffered(): number {
    return this.#partial.length;
  }

  #tooLong(n: number): QmpProtocolError {
    return new QmpProtocolError(`reply line of ${n}+ characters exceeds the ${this.maxLineLength} limit (a monitor flooding us; connection closed)`);
  }
}

function isBlank(line: string): boolean {
  // QEMU never sends blank lines, but a CR or stray whitespace is harmless; JSON.parse would reject "".
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d) return false;
  }
  return true;
}

/** Parses one line; anything but a JSON object is a protocol error. */
export function parseQmpLine(line: string): QmpMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new QmpProtocolError(`not JSON: ${preview(line)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new QmpProtocolError(`not a JSON object: ${preview(line)}`);
  }
  return value as QmpMessage;
}

function preview(line: string): string {
  return JSON.stringify(line.length > 120 ? `${line.slice(0, 120)}…` : line);
}

// QEMU answers a command line it cannot take (nesting deeper than 1024, a token over 64 MiB) with
// replies of its own, which would shift every later reply onto the wrong command: such lines never leave.
const MAX_COMMAND_DEPTH = 64;
const MAX_COMMAND_LENGTH = 1024 * 1024;

/**
 * A command as QEMU reads it: no id, no whitespace, no newline (its parser ends a command at the closing
 * brace). Throws on arguments JSON cannot carry, or that QEMU's parser would refuse.
 */
export function commandLine(command: string, args: Record<string, unknown> | undefined): string {
  const line = JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args });
  if (args === undefined) return line;
  if (line.length > MAX_COMMAND_LENGTH) throw new RangeError(`QMP command ${command} is ${line.length} characters, over ${MAX_COMMAND_LENGTH}`);
  let depth = 0;
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > MAX_COMMAND_DEPTH) throw new RangeError(`QMP command ${command} nests deeper than ${MAX_COMMAND_DEPTH}`);
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return line;
}
