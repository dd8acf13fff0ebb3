// The driver-neutral view of a QEMU guest's model (what ComputeDriver.guestView returns).

import type { GuestView } from '../driver.js';
import { serialEndpoint } from './console.js';
import type { GuestModel } from './model.js';

export function guestView(model: GuestModel): GuestView {
  const vncPort = model.vnc ? Number(model.vnc.service) : NaN;
  const serial = serialEndpoint(model.chardevs, '0.0.0.0');
  return {
    name: model.name,
    uuid: model.uuid,
    powerState: model.powerState,
    status: model.status,
    reason: model.reason,
    vnc: model.vnc && Number.isInteger(vncPort) && vncPort > 0 && vncPort <= 65535 ? { host: model.vnc.host, port: vncPort } : null,
    serial: serial ? { host: serial.host, port: serial.port } : null,
    blockDevices: model.blockDevices,
    nics: model.nics,
    vcpus: model.vcpus,
    connectedAt: model.connectedAt,
  };
}
