import { describe, expect, it } from 'vitest';
import { Invalid } from '../../../src/exception.js';
import { computeEndpoints, parseMonitorCommand, UnexpectedKeywordArgument } from '../../../src/rpc/endpoints/compute.js';
import { serializeFailure } from '../../../src/rpc/failure.js';
import { instancePrimitive } from '../../../src/rpc/objects/instance.js';
import { buildHarness, ctx, NAME_A, UUID_A } from '../compute/harness.js';

function endpoint() {
  const h = buildHarness();
  h.driver.addInstance({ name: NAME_A, uuid: UUID_A, consoleOutput: 'one\ntwo\n' });
  const [v6, v5] = computeEndpoints(h.manager);
  return { h, v6: v6!, v5: v5! };
}

const instance = instancePrimitive({ uuid: UUID_A, id: 10, host: 'host1' });

describe('compute RPC endpoint', () => {
  it('answers an argument the method does not take with the TypeError Nova\'s dispatcher raises', async () => {
    const { h, v6, v5 } = endpoint();
    for (const ep of [v6, v5]) {
      const err = await ep.handle('pause_instance', ctx(), { instance, bogus: 1, other: 2 })!.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnexpectedKeywordArgument);
      // Byte for byte what oslo serialises for Nova Zed (traceback aside): builtins.TypeError, args = [message], kwargs {}.
      const failure = JSON.parse(serializeFailure(err)) as Record<string, unknown>;
      expect(failure).toMatchObject({ class: 'TypeError', module: 'builtins', message: "pause_instance() got an unexpected keyword argument 'bogus'", kwargs: {} });
      expect(failure['args']).toEqual([failure['message']]);
      expect(serializeFailure(err)).toMatch(/^\{"class": "TypeError", "module": "builtins", "message": "pause_instance\(\) got an unexpected keyword argument 'bogus'", "tb": \[/);
    }
    expect((await h.driver.getInfo({ name: NAME_A, uuid: UUID_A })).state).toBe(1);
    const quoted = await v6.handle('get_host_uptime', ctx(), { "it's\n": 1 })!.catch((e: unknown) => (e as Error).message);
    expect(quoted).toBe(`get_host_uptime() got an unexpected keyword argument "it's\\n"`);
    // Every argument Nova sends is still taken.
    await v6.handle('reboot_instance', ctx(), { instance, block_device_info: null, reboot_type: 'SOFT' });
  });

  it('answers Nova\'s operations it does not perform as a driver without them, with every argument Nova sends', async () => {
    const { h, v6 } = endpoint();
    const suspend = await v6.handle('suspend_instance', ctx(), { instance })!.catch((e: unknown) => e);
    expect(JSON.parse(serializeFailure(suspend))).toMatchObject({ class: 'NotImplementedError', module: 'builtins', kwargs: {} });
    const rebuild = { instance, orig_image_ref: 'a', image_ref: 'b', injected_files: [], new_pass: null, orig_sys_metadata: {}, bdms: null, recreate: false, on_shared_storage: null, preserve_ephemeral: false, migration: null, scheduled_node: null, limits: {}, request_spec: null, accel_uuids: [], reimage_boot_volume: false };
    expect((await v6.handle('rebuild_instance', ctx(), rebuild)!.catch((e: unknown) => e)) as Error).toMatchObject({ className: 'NotImplementedError' });
    expect(await v6.handle('rescue_instance', ctx(), { instance, bogus: 1 })!.catch((e: unknown) => e)).toBeInstanceOf(UnexpectedKeywordArgument);
    expect((await v6.handle('get_spice_console', ctx(), { instance, console_type: 'spice-html5' })!.catch((e: unknown) => e)) as Error).toMatchObject({ className: 'ConsoleTypeUnavailable' });
    expect(h.stores.eventRows.map((e) => [e.event, e.result])).toEqual([['compute_suspend_instance', 'Error'], ['compute_rebuild_instance', 'Error']]);
    // Neutron's port events, forwarded by Nova's API: nothing to do here, and no error.
    expect(await v6.handle('external_instance_event', ctx(), { instances: [instance], events: [{ name: 'network-changed' }] })).toBeNull();
    expect(v6.orderingKey('suspend_instance', { instance })).toBe(UUID_A);
  });

  it('serves 6.1 and 5.13 with Nova\'s method names', () => {
    const { v6, v5 } = endpoint();
    expect([v6.version, v5.version]).toEqual(['6.1', '5.13']);
    for (const m of ['get_console_output', 'get_instance_diagnostics', 'get_diagnostics', 'get_vnc_console', 'stop_instance', 'reboot_instance', 'monitor_command']) {
      expect(v6.hasMethod(m)).toBe(true);
    }
    expect(v6.hasMethod('toString')).toBe(false);
    expect(v6.hasMethod('constructor')).toBe(false);
  });

  it('accepts a NovaObject primitive or a plain dict, and tail_length as int, digit string or null', async () => {
    const { v6 } = endpoint();
    expect(await v6.handle('get_console_output', ctx(), { instance, tail_length: 1 })).toBe('');
    expect(await v6.handle('get_console_output', ctx(), { instance: { uuid: UUID_A, id: 10 }, tail_length: '2' })).toBe('two\n');
    expect(await v6.handle('get_console_output', ctx(), { instance, tail_length: null })).toBe('one\ntwo\n');
  });

  it('returns a Diagnostics 1.0 primitive with nested primitives', async () => {
    const { v6 } = endpoint();
    const d = (await v6.handle('get_instance_diagnostics', ctx(), { instance })) as Record<string, unknown>;
    expect(d['nova_object.name']).toBe('Diagnostics');
    expect(d['nova_object.version']).toBe('1.0');
    const data = d['nova_object.data'] as Record<string, unknown>;
    expect(data['driver']).toBe('libvirt');
    expect((data['memory_details'] as Record<string, unknown>)['nova_object.name']).toBe('MemoryDiagnostics');
    expect(data['num_cpus']).toBe((data['cpu_details'] as unknown[]).length);
  });

  it('returns console connection info with Nova\'s keys', async () => {
    const { v6 } = endpoint();
    const c = (await v6.handle('get_vnc_console', ctx(), { instance, console_type: 'novnc' })) as Record<string, unknown>;
    expect(Object.keys(c).sort()).toEqual(['access_url', 'host', 'internal_access_path', 'port', 'token']);
  });

  it('turns bad arguments into Invalid, never a crash', async () => {
    const { v6 } = endpoint();
    const bad: Record<string, unknown>[] = [
      { instance: 'x' },
      { instance: { uuid: 'not-a-uuid' } },
      { instance: { id: -1 } },
      { instance: { 'nova_object.name': 'Flavor', 'nova_object.namespace': 'nova', 'nova_object.version': '1.0', 'nova_object.data': {} } },
      { instance: { 'nova_object.name': 'Instance', 'nova_object.namespace': 'nova', 'nova_object.version': '3.0', 'nova_object.data': { uuid: UUID_A } } },
      { instance, tail_length: 'ten' },
      { instance, tail_length: [1] },
    ];
    for (const args of bad) await expect(v6.handle('get_console_output', ctx(), args)).rejects.toBeInstanceOf(Invalid);
    await expect(v6.handle('reboot_instance', ctx(), { instance, reboot_type: 'MEDIUM' })).rejects.toBeInstanceOf(Invalid);
  });

  it('orders power actions per instance, not reads', () => {
    const { v6 } = endpoint();
    expect(v6.orderingKey('pause_instance', { instance })).toBe(UUID_A);
    expect(v6.orderingKey('get_console_output', { instance })).toBeNull();
  });

  it('parses monitor commands: QMP JSON, or HMP with hmp=true', () => {
    expect(parseMonitorCommand('{"execute":"query-status"}', false)).toEqual({ kind: 'qmp', execute: 'query-status', arguments: undefined });
    expect(parseMonitorCommand('info vnc', true)).toEqual({ kind: 'hmp', commandLine: 'info vnc' });
    expect(() => parseMonitorCommand('info vnc', false)).toThrow(Invalid);
    expect(() => parseMonitorCommand('{"execute":"x","bogus":1}', false)).toThrow(Invalid);
    // Deeper than QEMU's parser takes without answering errors of its own: refused before the monitor.
    const deep = `{"execute":"x","arguments":{"a":${'['.repeat(100)}${']'.repeat(100)}}}`;
    expect(() => parseMonitorCommand(deep, false)).toThrow(/nests deeper than 64/);
  });
});
