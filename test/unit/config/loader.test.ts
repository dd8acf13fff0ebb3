import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, renderSample } from '../../../src/config/loader.js';

function file(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'novamon-conf-'));
  const p = path.join(dir, 'novamon.conf');
  writeFileSync(p, text);
  return p;
}

describe('configuration', () => {
  it('has Nova\'s defaults', () => {
    const c = loadConfig([]);
    expect(c.DEFAULT.control_exchange).toBe('nova');
    expect(c.DEFAULT.instance_name_template).toBe('instance-%08x');
    expect(c.DEFAULT.compute_driver).toBe('qemu');
    expect(c.DEFAULT.instances_path).toBe('/var/lib/novamon/instances');
    expect(c.consoleauth.token_ttl).toBe(600);
    expect(c.DEFAULT.sync_power_state_interval).toBe(600);
  });

  it('reads files in order (later wins) and lets the environment override', () => {
    const a = file('[DEFAULT]\nhost = one\ncompute_driver = fake\n[monitor]\ncommand_timeout = 3\n');
    const b = file('[DEFAULT]\nhost = two\n[database]\nconnection = postgresql://db/nova\n');
    const c = loadConfig([a, b], { NOVAMON_MONITOR__COMMAND_TIMEOUT: '7.5' });
    expect(c.DEFAULT.host).toBe('two');
    expect(c.DEFAULT.compute_driver).toBe('fake');
    expect(c.database.connection).toBe('postgresql://db/nova');
    expect(c.monitor.command_timeout).toBe(7.5);
  });

  it('names the file, section and key of a bad value', () => {
    const f = file('[DEFAULT]\ncompute_driver = xen\n');
    expect(() => loadConfig([f])).toThrow(ConfigError);
    expect(() => loadConfig([f])).toThrow(`${f}: [DEFAULT] compute_driver = "xen"`);
    expect(() => loadConfig([file('[monitor]\ncommand_timeout = soon\n')])).toThrow(/\[monitor\] command_timeout/);
    expect(() => loadConfig([file('[database]\nconnection = mysql://x\n')])).toThrow(/\[database\] connection/);
    expect(() => loadConfig([file('[qemu]\nrelaunch_image_paths = /srv/images, images\n')])).toThrow(/\[qemu\] relaunch_image_paths.*must be an absolute path/);
  });

  it('reads the directories power_on may take images from', () => {
    expect(loadConfig([]).qemu.relaunch_image_paths).toEqual([]);
    expect(loadConfig([file('[qemu]\nrelaunch_image_paths = /srv/images, /var/lib/libvirt/images\n')]).qemu.relaunch_image_paths)
      .toEqual(['/srv/images', '/var/lib/libvirt/images']);
  });

  it('refuses unknown keys in known sections, ignores unknown sections', () => {
    expect(() => loadConfig([file('[DEFAULT]\ncompute_drvier = qemu\n')])).toThrow(/\[DEFAULT\] compute_drvier: unknown option/);
    expect(() => loadConfig([file('[glance]\napi_servers = x\n')])).not.toThrow();
    expect(() => loadConfig([], { NOVAMON_DEFAULT__NOPE: '1' })).toThrow(/environment NOVAMON_DEFAULT__NOPE/);
    expect(() => loadConfig(['/nonexistent/novamon.conf'])).toThrow(/\/nonexistent\/novamon.conf: cannot read/);
  });

  it('renders a sample with every option', () => {
    const sample = renderSample();
    expect(sample).toContain('[DEFAULT]');
    expect(sample).toContain('#control_exchange = nova');
    expect(sample).toContain('#connection_uri = qemu:///system');
  });
});
