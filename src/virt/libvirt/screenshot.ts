// What virDomainScreenshot hands back, as a Screenshot. libvirt picks the format (9.0 has QEMU >= 7.1
// write PNG, older ones PPM) and offers no choice: a PNG is passed through after a look at its header,
// a PPM is parsed strictly and re-encoded (../screenshot.ts).

import { InternalError } from '../../exception.js';
import { BadScreendump, screenshotFromPpm, type Screenshot } from '../screenshot.js';

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function screenshotFromLibvirt(instanceId: string, mime: string | null, data: Buffer): Screenshot {
  try {
    if (mime === 'image/png' && data.length >= 24 && data.subarray(0, 8).equals(PNG_MAGIC)) {
      return { png: data, width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
    }
    return screenshotFromPpm(data);
  } catch (err) {
    if (err instanceof BadScreendump) throw new InternalError(`screenshot of ${instanceId} (${mime ?? 'no type'}) refused: ${err.message}`, { cause: err });
    throw err;
  }
}
