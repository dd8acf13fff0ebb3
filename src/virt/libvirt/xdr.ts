// XDR (RFC 4506) encoding and decoding, the subset libvirt's RPC protocol uses: 32/64-bit integers,
// booleans, doubles, strings, fixed and variable opaque data, optional values and arrays. Decoding is
// bounds-checked: a short or oversized message raises XdrError instead of reading past the buffer.

export class XdrError extends Error {
  override readonly name = 'XdrError';
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

export class XdrWriter {
  private chunks: Buffer[] = [];
  private length = 0;

  private push(b: Buffer): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  int(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }

  uint(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return this.push(b);
  }

  bool(v: boolean): this {
    return this.uint(v ? 1 : 0);
  }

  hyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return this.push(b);
  }

  uhyper(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }

  /** Fixed-length opaque data (e.g. a 16-byte uuid): no length word, padded to 4 bytes. */
  fixedOpaque(data: Uint8Array, size: number): this {
    if (data.length !== size) throw new XdrError(`fixed opaque must be ${size} bytes, got ${data.length}`);
    this.push(Buffer.from(data));
    return this.push(Buffer.alloc(pad4(size)));
  }

  opaque(data: Uint8Array): this {
    this.uint(data.length);
    this.push(Buffer.from(data));
    return this.push(Buffer.alloc(pad4(data.length)));
  }

  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }

  /** XDR optional data (`type *name`): a boolean, then the value when present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  array<T>(items: readonly T[], write: (w: this, v: T) => void): this {
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  toBuffer(): Buffer {
    const out = Buffer.concat(this.chunks, this.length);
    this.chunks = [out];
    return out;
  }
}

export class XdrReader {
  private offset = 0;

  constructor(
    private readonly buf: Buffer,
    /** Largest string or opaque accepted, so a corrupt length cannot make us allocate gigabytes. */
    private readonly maxItem = 16 * 1024 * 1024,
  ) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private take(n: number): Buffer {
    if (n < 0 || this.offset + n > this.buf.length) {
      throw new XdrError(`XDR message truncated: need ${n} bytes at offset ${this.offset}, have ${this.remaining}`);
    }
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** Every byte left, unpadded: a stream packet's payload is raw data, not an XDR item. */
  rest(): Buffer {
    return Buffer.from(this.take(this.remaining));
  }

  int(): number {
    return this.take(4).readInt32BE(0);
  }

  uint(): number {
    return this.take(4).readUInt32BE(0);
  }

  bool(): boolean {
    const v = this.uint();
    if (v > 1) throw new XdrError(`XDR boolean out of range: ${v}`);
    return v === 1;
  }

  hyper(): bigint {
    return this.take(8).readBigInt64BE(0);
  }

  uhyper(): bigint {
    return this.take(8).readBigUInt64BE(0);
  }

  double(): number {
    return this.take(8).readDoubleBE(0);
  }

  fixedOpaque(size: number): Buffer {
    const out = Buffer.from(this.take(size));
    this.take(pad4(size));
    return out;
  }

  opaque(): Buffer {
    const n = this.uint();
    if (n > this.maxItem) throw new XdrError(`XDR opaque of ${n} bytes exceeds the ${this.maxItem}-byte limit`);
    return this.fixedOpaque(n);
  }

  string(): string {
    return this.opaque().toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  array<T>(read: (r: this) => T, max = 1 << 20): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`XDR array of ${n} items exceeds the limit of ${max}`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }
}
