// The fake driver's screen: a deterministic 64x48 image in four horizontal bands (red, green, blue,
// white), so layers above the driver can check a screenshot's colours without a hypervisor.

import { encodePng, type Screenshot } from '../screenshot.js';

export const FAKE_SCREEN_WIDTH = 64;
export const FAKE_SCREEN_HEIGHT = 48;
export const FAKE_SCREEN_BANDS: readonly (readonly [number, number, number])[] = [
  [0xff, 0x00, 0x00],
  [0x00, 0xff, 0x00],
  [0x00, 0x00, 0xff],
  [0xff, 0xff, 0xff],
];

export function fakeScreenshot(): Screenshot {
  const rgb = Buffer.alloc(FAKE_SCREEN_WIDTH * FAKE_SCREEN_HEIGHT * 3);
  const bandHeight = FAKE_SCREEN_HEIGHT / FAKE_SCREEN_BANDS.length;
  for (let y = 0; y < FAKE_SCREEN_HEIGHT; y++) {
    const colour = FAKE_SCREEN_BANDS[Math.floor(y / bandHeight)] ?? [0, 0, 0];
    for (let x = 0; x < FAKE_SCREEN_WIDTH; x++) rgb.set(colour, (y * FAKE_SCREEN_WIDTH + x) * 3);
  }
  return { png: encodePng({ width: FAKE_SCREEN_WIDTH, height: FAKE_SCREEN_HEIGHT, rgb }), width: FAKE_SCREEN_WIDTH, height: FAKE_SCREEN_HEIGHT };
}
