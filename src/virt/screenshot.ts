// Guest screenshots: the PPM (P6) that QEMU's `screendump` writes, parsed strictly because QEMU and
// the guest control its bytes, and re-encoded as PNG with node's zlib. PPM is asked for on every QEMU
// (it is also the only format before 7.1): QEMU 7.2's own PNG writer takes the surface's pixel layout
// as is and swaps red and blue on some surfaces, while its PPM writer converts every layout to R, G, B.

import { crc32, deflateSync } from 'node:zlib';

/** A guest's screen as a PNG image. */
export interface Screenshot {
  png: Buffer;
  width: number;
  height: number;
}

/** Largest screen accepted per side (QEMU's VGA devices stop well below this). */
export const MAX_SCREEN_SIDE = 16384;
/** Largest screendump file read (a 4096x4096 screen in PPM is 48 MiB). */
export const MAX_SCREENDUMP_BYTES = 64 * 1024 * 1024;

export class BadScreendump extends Error {
  override readonly name = 'BadScreendump';
}

export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes, rows top to bottom, R G B per pixel. */
  rgb: Buffer;
}

/** Parses a binary PPM (P6, maxval 255, comments allowed in the header); anything else is refused. */
export function parsePpm(data: Buffer): RgbImage {
  let pos = 0;
  const token = (): string => {
    for (;;) {
      while (pos < data.length && isSpace(data[pos] as number)) pos++;
      if (data[pos] !== 0x23) break; // '#': a comment runs to the end of the line
      while (pos < data.length && data[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < data.length && pos - start < 16 && !isSpace(data[pos] as number)) pos++;
    return data.toString('latin1', start, pos);
  };
  if (token() !== 'P6') throw new BadScreendump('not a binary PPM (P6) image');
  const [width, height, maxval] = [token(), token(), token()].map((t) => (/^\d{1,6}$/.test(t) ? Number(t) : NaN));
  if (!validSide(width) || !validSide(height)) throw new BadScreendump('PPM dimensions out of range');
  if (maxval !== 255) throw new BadScreendump('PPM maxval must be 255');
  if (!isSpace(data[pos] ?? 0x78)) throw new BadScreendump('PPM header not followed by whitespace');
  pos++;
  const size = (width as number) * (height as number) * 3;
  if (data.length - pos < size) throw new BadScreendump('PPM pixel data is truncated');
  return { width: width as number, height: height as number, rgb: data.subarray(pos, pos + size) };
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
}

function validSide(n: number | undefined): boolean {
  return n !== undefined && Number.isInteger(n) && n >= 1 && n <= MAX_SCREEN_SIDE;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body, crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, body, crc]);
}

/** An 8-bit RGB PNG (colour type 2), every row with filter 0 (none): screens compress well as is. */
export function encodePng(image: RgbImage): Buffer {
  const { width, height, rgb } = image;
  const stride = width * 3;
  if (rgb.length < stride * height) throw new BadScreendump('pixel buffer shorter than the image');
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) rgb.copy(raw, y * (stride + 1) + 1, y * stride, (y + 1) * stride);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, truecolour, deflate, filter method 0, no interlace
  return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0))]);
}

/** A PPM screendump as a Screenshot. */
export function screenshotFromPpm(data: Buffer): Screenshot {
  const image = parsePpm(data);
  return { png: encodePng(image), width: image.width, height: image.height };
}
