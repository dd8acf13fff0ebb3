import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadScreendump, encodePng, parsePpm, screenshotFromPpm } from '../../../src/virt/screenshot.js';
import { readCapped } from '../../../src/virt/qemu/screendump.js';
import { fakeScreenshot, FAKE_SCREEN_BANDS } from '../../../src/virt/fake/screen.js';
import { countColour, decodePng } from '../../fixtures/png.js';

function ppm(width: number, height: number, pixel: (x: number, y: number) => [number, number, number], header = `P6\n${width} ${height}\n255\n`): Buffer {
  const body = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) body.set(pixel(x, y), (y * width + x) * 3);
  return Buffer.concat([Buffer.from(header, 'latin1'), body]);
}

describe('screenshot images', () => {
  it('turns a PPM into a PNG with the same pixels, red staying red', () => {
    const shot = screenshotFromPpm(ppm(5, 3, (x, y) => [x * 50, y * 100, 7]));
    const img = decodePng(shot.png);
    expect([shot.width, shot.height, img.width, img.height]).toEqual([5, 3, 5, 3]);
    for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) expect(img.pixel(x, y)).toEqual([x * 50, y * 100, 7]);
  });

  it('reads header comments and any whitespace, as QEMU or another writer may emit them', () => {
    const img = parsePpm(ppm(2, 2, () => [1, 2, 3], 'P6 # QEMU\n2\t2\r\n# max\n255 '));
    expect([img.width, img.height, img.rgb.length]).toEqual([2, 2, 12]);
  });

  it('refuses what is not an 8-bit P6 of sane size, or is cut short', () => {
    for (const bad of ['P3\n1 1\n255\n', 'P6\n0 1\n255\n', 'P6\n99999 1\n255\n', 'P6\n1 1\n65535\n', 'P6\n-1 1\n255\n', 'GIF89a']) {
      expect(() => parsePpm(Buffer.from(bad + '\0\0\0', 'latin1'))).toThrow(BadScreendump);
    }
    expect(() => parsePpm(ppm(4, 4, () => [0, 0, 0]).subarray(0, 30))).toThrow(/truncated/);
  });

  it('refuses pixel buffers shorter than the image they claim', () => {
    expect(() => encodePng({ width: 10, height: 10, rgb: Buffer.alloc(5) })).toThrow(BadScreendump);
  });

  it('gives the fake driver four bands of known colours', () => {
    const img = decodePng(fakeScreenshot().png);
    for (const band of FAKE_SCREEN_BANDS) expect(countColour(img, band)).toBe((img.width * img.height) / 4);
  });
});

describe('reading a screendump file', () => {
  it('follows no symlink, reads no FIFO-like or oversized file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'novamon-screendump-'));
    try {
      const real = path.join(dir, 'real.ppm');
      await writeFile(real, Buffer.alloc(100));
      expect((await readCapped(real, 100)).length).toBe(100);
      await expect(readCapped(real, 99)).rejects.toThrow(/cap/);
      const link = path.join(dir, 'link.ppm');
      await symlink('/etc/passwd', link);
      await expect(readCapped(link, 1 << 20)).rejects.toMatchObject({ code: 'ELOOP' });
      await expect(readCapped(dir, 1 << 20)).rejects.toThrow(/regular file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
