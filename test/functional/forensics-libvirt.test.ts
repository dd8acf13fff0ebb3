// Screenshot (virDomainScreenshot, streamed over libvirt's remote protocol) and trigger_crash_dump
// (virDomainInjectNMI) through the libvirt driver, on a real libvirtd domain booting the paint sector.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/loader.js';
import { InstanceNotRunning } from '../../src/exception.js';
import { silentLogger } from '../../src/logging.js';
import { LibvirtDriver } from '../../src/virt/libvirt/driver.js';
import { buildVariantImage, FIXTURE_NMI_LINE, PAINT_RGB } from '../fixtures/boot-variants.js';
import { FIXTURE_CONSOLE_LINE, startLibvirtDomain, type LibvirtDomain } from '../fixtures/libvirt-domain.js';
import { ensureLibvirtd } from '../fixtures/libvirt-env.js';
import { countColour, decodePng } from '../fixtures/png.js';

describe('screenshot and trigger_crash_dump through libvirt', () => {
  let driver: LibvirtDriver;
  let dom: LibvirtDomain;

  beforeAll(async () => {
    await ensureLibvirtd();
    driver = new LibvirtDriver(loadConfig([], { NOVAMON_MONITOR__COMMAND_TIMEOUT: '10' }), silentLogger());
    await driver.initHost('libvirt-forensics');
    dom = await startLibvirtDomain({ image: buildVariantImage('paint') });
    await dom.waitForConsole(FIXTURE_CONSOLE_LINE, 60_000);
  }, 120_000);

  afterAll(async () => {
    await dom?.remove();
    await driver?.close();
  });

  it('streams the screen as PNG with the painted colour', async () => {
    const shot = await driver.screenshot({ name: dom.name });
    const img = decodePng(shot.png);
    expect([img.width, img.height]).toEqual([shot.width, shot.height]);
    expect(img.pixel(Math.floor(img.width / 2), Math.floor(img.height / 2))).toEqual([...PAINT_RGB]);
    expect(countColour(img, PAINT_RGB)).toBe(img.width * img.height);
    // The connection is still good for ordinary calls after a stream.
    expect((await driver.getInfo({ name: dom.name })).state).toBe(1);
  });

  it('injects an NMI the guest prints, and refuses a shut-off domain with InstanceNotRunning', async () => {
    await driver.triggerCrashDump({ name: dom.name });
    await dom.waitForConsole(FIXTURE_NMI_LINE, 30_000);
    await dom.virsh('destroy', dom.name);
    await expect(driver.triggerCrashDump({ name: dom.name })).rejects.toBeInstanceOf(InstanceNotRunning);
    await expect(driver.screenshot({ name: dom.name })).rejects.toBeInstanceOf(InstanceNotRunning);
  });
});
