// The fixture boot sector is a valid MBR boot sector carrying the known console line.

import { describe, expect, it } from 'vitest';
import { buildBootSector, buildFixtureImage, FIXTURE_CONSOLE_LINE, FIXTURE_IMAGE_SIZE } from '../../fixtures/boot-sector.js';

describe('fixture boot sector', () => {
  it('is 512 bytes ending in the 55 AA signature', () => {
    const sector = buildBootSector();
    expect(sector.length).toBe(512);
    expect([sector[510], sector[511]]).toEqual([0x55, 0xaa]);
    expect(sector[0]).toBe(0xfa); // cli
  });

  it('carries the console line, CR LF and NUL terminated', () => {
    const text = Buffer.from(buildBootSector()).toString('latin1');
    expect(text).toContain(`${FIXTURE_CONSOLE_LINE}\r\n\0`);
  });

  it('is the first sector of a 1 MiB raw image', () => {
    const image = buildFixtureImage();
    expect(image.length).toBe(FIXTURE_IMAGE_SIZE);
    expect(image.subarray(0, 512).equals(Buffer.from(buildBootSector()))).toBe(true);
  });
});
