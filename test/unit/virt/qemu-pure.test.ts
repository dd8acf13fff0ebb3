// Pure parts of the qemu driver: event mapping, diagnostics shaping, console and /proc parsing,
// relaunch command lines. Samples are real QEMU 7.2 replies (trimmed).

import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerState } from '../../../src/virt/power-state.js';
import { consoleLogFilesFromCmdline, readTail, serialEndpoint, vncEndpoint } from '../../../src/virt/qemu/console.js';
import { diskStats, diskTarget, parseInfoNetwork, toDiagnostics, toLegacyDiagnostics, type GuestStats } from '../../../src/virt/qemu/diagnostics.js';
import { eventTimestampMs, runStateAfter, transitionBetween, type MonitorEvent } from '../../../src/virt/qemu/events.js';
import { loadRecord, relaunchArgv, saveRecord } from '../../../src/virt/qemu/launcher.js';
import { cmdlineServesSocket, parseProcStat, procUnits, readKernelText, sampleProcess, secondsSinceBoot } from '../../../src/virt/qemu/proc.js';

describe('QMP events to run states', () => {
  const after = (status: string, ...events: MonitorEvent[]) => {
    let step = { status, stopAs: null as string | null };
    for (const e of events) step = runStateAfter(step.status, step.stopAs, e);
    return step.status;
  };

  it('a pause and a resume', () => {
    expect(after('running', { event: 'STOP' })).toBe('paused');
    expect(after('paused', { event: 'RESUME' })).toBe('running');
  });

  it('the STOP that follows a -no-shutdown power-off is not a pause', () => {
    expect(after('running', { event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' } }, { event: 'STOP' })).toBe('shutdown');
  });

  it('a reset of a stopped guest leaves it in prelaunch; a running guest runs on', () => {
    expect(after('shutdown', { event: 'RESET', data: { guest: false, reason: 'host-qmp-system-reset' } })).toBe('prelaunch');
    expect(after('paused', { event: 'RESET' })).toBe('prelaunch');
    expect(after('running', { event: 'RESET', data: { guest: true, reason: 'guest-reset' } })).toBe('running');
    expect(after('shutdown', { event: 'RESET' }, { event: 'RESUME' })).toBe('running');
  });

  it('a STOP after an I/O error or a watchdog says why', () => {
    expect(after('running', { event: 'BLOCK_IO_ERROR', data: { action: 'stop' } }, { event: 'STOP' })).toBe('io-error');
    expect(after('running', { event: 'WATCHDOG', data: { action: 'pause' } }, { event: 'STOP' })).toBe('watchdog');
    expect(after('running', { event: 'BLOCK_IO_ERROR', data: { action: 'report' } }, { event: 'STOP' })).toBe('paused');
  });

  it('panics, suspends and wake-ups; POWERDOWN changes nothing', () => {
    expect(after('running', { event: 'GUEST_PANICKED', data: { action: 'pause' } }, { event: 'STOP' })).toBe('guest-panicked');
    expect(after('running', { event: 'GUEST_PANICKED', data: { action: 'run' } })).toBe('running');
    expect(after('running', { event: 'SUSPEND' })).toBe('suspended');
    expect(after('suspended', { event: 'WAKEUP' })).toBe('running');
    expect(after('running', { event: 'POWERDOWN' })).toBe('running');
  });

  it('uses QEMU\'s timestamp', () => {
    expect(eventTimestampMs({ event: 'STOP', timestamp: { seconds: 1795564745, microseconds: 480233 } }, 0)).toBe(1795564745480);
    expect(eventTimestampMs({ event: 'STOP' }, 42)).toBe(42);
  });

  it('derives transitions between power states', () => {
    expect(transitionBetween(undefined, PowerState.PAUSED)).toBe('paused');
    expect(transitionBetween(PowerState.SHUTDOWN, PowerState.PAUSED)).toBe('paused');
    expect(transitionBetween(PowerState.SHUTDOWN, PowerState.RUNNING)).toBe('started');
    expect(transitionBetween(PowerState.PAUSED, PowerState.RUNNING)).toBe('resumed');
    expect(transitionBetween(PowerState.RUNNING, PowerState.SHUTDOWN)).toBe('stopped');
    expect(transitionBetween(PowerState.RUNNING, PowerState.RUNNING)).toBeNull();
  });
});

const blockstats = [
  {
    device: 'drive-virtio-disk0',
    qdev: '/machine/peripheral/virtio-disk0/virtio-backend',
    stats: { rd_bytes: 512, rd_operations: 1, wr_bytes: 0, wr_operations: 0, failed_rd_operations: 0, failed_wr_operations: 0, failed_flush_operations: 0, rd_total_time_ns: 2500000, wr_total_time_ns: 0, flush_operations: 3 },
  },
];
const infoNetwork =
  'net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:76:ec:a8\r\n \\ hostnet0: index=0,type=user,net=10.0.2.0,restrict=off\r\n' +
  'net1: index=0,type=nic,model=e1000,macaddr=52:54:00:00:00:02\r\n \\ hostnet1: index=0,type=tap,ifname=tap7,script=no,downscript=no\r\n';

describe('diagnostics shaping', () => {
  it('names disks as libvirt does', () => {
    expect(diskTarget('virtio-disk0')).toBe('vda');
    expect(diskTarget('virtio-disk27')).toBe('vdab');
    expect(diskTarget('scsi0-0-0-1')).toBe('sdb');
    expect(diskTarget('ide0-1-0')).toBe('hdc');
    expect(diskTarget('mydisk')).toBe('mydisk');
  });

  it('reads query-blockstats', () => {
    expect(diskStats(blockstats)).toEqual([
      { target: 'vda', device: 'vda', readBytes: 512, readRequests: 1, writeBytes: 0, writeRequests: 0, errorsCount: 0, readTimeNs: 2500000, writeTimeNs: 0, flushRequests: 3 },
    ]);
  });

  it('parses HMP info network, user and tap peers', () => {
    expect(parseInfoNetwork(infoNetwork)).toEqual([
      { name: 'net0', mac: '52:54:00:76:ec:a8', peerType: 'user', ifname: null },
      { name: 'net1', mac: '52:54:00:00:00:02', peerType: 'tap', ifname: 'tap7' },
    ]);
  });

  const stats: GuestStats = {
    status: 'running',
    kvm: false,
    cpuTimeNs: 7,
    cpus: [{ id: 0, timeNs: 1_230_000_000 }],
    disks: diskStats(blockstats),
    nics: [
      { name: 'net0', mac: '52:54:00:76:ec:a8', hostDevice: null, counters: null },
      {
        name: 'net1', mac: '52:54:00:00:00:02', hostDevice: 'tap7',
        counters: { rxOctets: 10, rxPackets: 1, rxErrors: 0, rxDrop: 0, txOctets: 20, txPackets: 2, txErrors: 0, txDrop: 0 },
      },
    ],
    memory: { maximumBytes: 64 * 1024 * 1024, balloonActualBytes: 64 * 1024 * 1024, guestStats: {}, usedBytes: null, rssKiB: 40_000 },
    uptime: 12,
    monitorSeconds: 0.001,
  };

  it('builds Nova\'s Diagnostics with nulls for what is unknown', () => {
    const d = toDiagnostics(stats);
    expect(d).toMatchObject({ state: 'running', driver: 'libvirt', hypervisor: 'qemu', hypervisorOs: 'linux', uptime: 12, configDrive: false });
    expect(d.cpuDetails).toEqual([{ id: 0, time: 1_230_000_000, utilisation: null }]);
    expect(d.memoryDetails).toEqual({ maximum: 64, used: null });
    expect(d.nicDetails[0]).toMatchObject({ macAddress: '52:54:00:76:ec:a8', rxOctets: null, txPackets: null });
    expect(d.nicDetails[1]).toMatchObject({ rxOctets: 10, txOctets: 20 });
    expect(d.diskDetails).toEqual([{ device: 'vda', readBytes: 512, readRequests: 1, writeBytes: 0, writeRequests: 0, errorsCount: 0 }]);
  });

  it('builds the legacy dict with libvirt\'s keys', () => {
    expect(toLegacyDiagnostics(stats)).toEqual({
      cpu0_time: 1_230_000_000,
      vda_read_req: 1, vda_read: 512, vda_write_req: 0, vda_write: 0, vda_errors: 0,
      tap7_rx: 10, tap7_rx_packets: 1, tap7_rx_errors: 0, tap7_rx_drop: 0,
      tap7_tx: 20, tap7_tx_packets: 2, tap7_tx_errors: 0, tap7_tx_drop: 0,
      memory: 65536, 'memory-actual': 65536, 'memory-rss': 40_000,
    });
  });
});

describe('consoles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'novamon-console-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the serial log file in a QEMU command line', () => {
    const argv = ['qemu', '-chardev', 'socket,id=charmonitor,path=/x.monitor,server=on', '-chardev', 'ringbuf,id=charserial0,size=65536,logfile=/var/log/c.log'];
    expect(consoleLogFilesFromCmdline(argv)).toEqual(['/var/log/c.log']);
    expect(consoleLogFilesFromCmdline(['qemu', '-m', '64'])).toEqual([]);
  });

  it('reads only the tail of a large log, and null for none', async () => {
    const file = path.join(dir, 'big.log');
    await writeFile(file, Buffer.concat([Buffer.alloc(1000, 'a'), Buffer.from('END')]));
    expect((await readTail(file, 10))?.toString()).toBe('aaaaaaaEND');
    expect(await readTail(path.join(dir, 'missing.log'))).toBeNull();
  });

  it('VNC from query-vnc; disabled or wildcard handled', () => {
    expect(vncEndpoint({ enabled: true, host: '127.0.0.1', service: '5919', family: 'ipv4' }, '10.0.0.1')).toEqual({ host: '127.0.0.1', port: 5919, internalAccessPath: null });
    expect(vncEndpoint({ enabled: true, host: '0.0.0.0', service: '5900' }, '10.0.0.1')?.host).toBe('10.0.0.1');
    expect(vncEndpoint({ enabled: false }, '10.0.0.1')).toBeNull();
  });

  it('serial from a tcp chardev, connected or not; ringbuf is not a serial console', () => {
    expect(serialEndpoint([{ label: 'charserial0', filename: 'ringbuf' }], 'h')).toBeNull();
    expect(serialEndpoint([{ label: 'charserial0', filename: 'disconnected:tcp:127.0.0.1:4555,server=on' }], 'h')).toEqual({ host: '127.0.0.1', port: 4555, internalAccessPath: null });
    expect(serialEndpoint([{ label: 'charserial0', filename: 'tcp:0.0.0.0:4556,server=on <-> 127.0.0.1:5000' }], 'h')).toEqual({ host: 'h', port: 4556, internalAccessPath: null });
    expect(serialEndpoint([{ label: 'charmonitor', filename: 'tcp:127.0.0.1:4444,server=on' }], 'h')).toBeNull();
  });
});

describe('/proc parsing', () => {
  it('parses stat with a comm that contains spaces and parentheses', () => {
    const stat = '1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 987654 1000 200 ...';
    expect(parseProcStat(stat)).toEqual({ state: 'S', utime: 250, stime: 50, starttime: 987654, rssPages: 200 });
  });

  it('samples a live process: CPU, uptime, RSS and a thread, as /proc and Node see them', async () => {
    const u = await procUnits();
    const s = sampleProcess(process.pid, [process.pid, 999_999_999], u);
    const rss = process.memoryUsage().rss / 1024;
    expect(s.rssKiB).toBeGreaterThan(rss * 0.8);
    expect(s.rssKiB).toBeLessThan(rss * 1.2);
    const cpu = process.cpuUsage();
    expect(s.cpuNs).toBeGreaterThan(0);
    expect(s.cpuNs).toBeLessThanOrEqual((cpu.user + cpu.system) * 1000 + 2e9 / u.ticksPerSecond);
    expect(s.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(s.uptimeSeconds).toBeLessThanOrEqual(Math.ceil(process.uptime()) + 1);
    // The main thread's tid is the pid; a thread that does not exist reads as unknown, not zero.
    expect(s.threadCpuNs[0]).toBeGreaterThan(0);
    expect(s.threadCpuNs[1]).toBeNull();
    expect(sampleProcess(999_999_999, [], u)).toEqual({ cpuNs: null, uptimeSeconds: null, rssKiB: null, threadCpuNs: [] });
  });

  it('reads kernel text whole, small or past its buffer, and null for a missing file', () => {
    const maps = readFileSync('/proc/self/maps', 'latin1');
    expect(maps.length).toBeGreaterThan(4096); // a node process maps far more than one buffer's worth
    // The mappings change between two reads (allocations), so compare the shape, not the bytes.
    const read = readKernelText('/proc/self/maps') ?? '';
    expect(read.length).toBeGreaterThan(4096);
    expect(read.split('\n')[0]).toBe(maps.split('\n')[0]);
    expect(readKernelText(`/proc/${process.pid}/stat`)).toMatch(new RegExp(`^${process.pid} \\(`));
    expect(readKernelText('/proc/999999999/stat')).toBeNull();
    const boot = Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]);
    const first = secondsSinceBoot();
    expect(first).toBeGreaterThanOrEqual(boot);
    expect(first).toBeLessThan(boot + 5);
    expect(secondsSinceBoot()).toBeGreaterThanOrEqual(first);
  });

  it('matches a command line to its monitor socket, absolute or relative', () => {
    const argv = ['qemu', '-chardev', 'socket,id=charmonitor,path=/i/instance-00000001.monitor,server=on,wait=off'];
    expect(cmdlineServesSocket(argv, '/i/instance-00000001.monitor', null)).toBe(true);
    expect(cmdlineServesSocket(argv, '/i/instance-0000000.monitor', null)).toBe(false);
    expect(cmdlineServesSocket(['qemu', '-qmp', 'unix:rel.monitor,server,nowait'], '/cwd/rel.monitor', '/cwd')).toBe(true);
  });
});

describe('relaunch records', () => {
  it('keeps the command line, adding -daemonize, -pidfile and logappend when missing', () => {
    const argv = ['qemu-system-x86_64', '-name', 'x', '-chardev', 'ringbuf,id=charserial0,logfile=/l.log'];
    expect(relaunchArgv(argv, '/p.pid')).toEqual([
      'qemu-system-x86_64', '-name', 'x', '-chardev', 'ringbuf,id=charserial0,logfile=/l.log,logappend=on', '-daemonize', '-pidfile', '/p.pid',
    ]);
    const daemon = ['q', '-daemonize', '-pidfile', '/other.pid'];
    expect(relaunchArgv(daemon, '/p.pid')).toEqual(daemon);
  });

  it('saves and loads a record, refusing names that escape the state dir', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'novamon-records-'));
    try {
      const record = { name: 'instance-00000001', uuid: null, argv: ['q', '-m', '64'], exe: null, cwd: '/', recordedAt: 'now', poweredOff: true };
      await saveRecord(dir, record);
      expect(await loadRecord(dir, 'instance-00000001')).toEqual(record);
      expect(await loadRecord(dir, 'instance-00000002')).toBeNull();
      await expect(loadRecord(dir, '../x')).rejects.toThrow(/outside/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
