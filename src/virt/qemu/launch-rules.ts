// Which QEMU options a relaunch may carry, deny by default: an option not in this table (and not a flag
// below) is refused, whatever it does, so a QEMU that rewrote its argv cannot reach an option nobody
// reviewed. Options that name host files are checked by the rules of launch-backends.ts and launch-paths.ts.

import {
  audioRule, blockRule, chardevRule, deviceRule, globalRule, imageRule, legacyChardevRule, netRule, objectRule, tpmRule,
  type Rule, type RuleContext,
} from './launch-backends.js';
import { parseOpts } from './launch-opts.js';

/** Options without a value that touch nothing on the host. */
export const FLAGS = new Set([
  '-S', '-nodefaults', '-no-user-config', '-no-shutdown', '-no-reboot', '-daemonize', '-enable-kvm', '-nographic',
  '-no-acpi', '-no-hpet', '-no-fd-bootchk', '-only-migratable', '-snapshot', '-full-screen', '-portrait', '-win2k-hack',
  '-mem-prealloc', '-usb', '-singlestep', '-async-teardown',
]);

/** An option whose value only configures the emulated machine. */
const plain: Rule = () => Promise.resolve(null);

/**
 * Keys of an option that name a file loaded into the guest, checked as `load` (a path) or `firmware`
 * (also looked up in QEMU's data directories), and keys QEMU writes to a host file (refused).
 */
function keyedRule(impliedKey: string | undefined, files: Readonly<Record<string, 'load' | 'firmware'>>, refused: readonly string[] = []): Rule {
  return async (value, ctx, opt) => {
    for (const [k, v] of parseOpts(value, impliedKey)) {
      if (refused.includes(k)) return `${opt} ${k}=${v} is not relaunched`;
      const kind = Object.hasOwn(files, k) ? files[k] : undefined;
      if (kind === undefined) continue;
      // -acpitable data= is a colon-separated list of files.
      for (const f of opt === '-acpitable' && k === 'data' ? v.split(':') : [v]) {
        const why = await ctx[kind](f, `${opt} ${k}=${f}`);
        if (why !== null) return why;
      }
    }
    return null;
  };
}

const MACHINE_FILES = { kernel: 'load', initrd: 'load', dtb: 'load', firmware: 'firmware' } as const;

const loadRule: Rule = (value, ctx, opt) => ctx.load(value, `${opt} ${value}`);
const firmwareRule: Rule = (value, ctx, opt) => ctx.firmware(value, `${opt} ${value}`);
const stateRule: Rule = (value, ctx, opt) => ctx.state(value, `${opt} ${value}`);

/** -option-rom FILE[,bootindex=N]. */
const optionRomRule: Rule = (value, ctx, opt) => {
  const [, file = ''] = parseOpts(value, 'romfile').find(([k]) => k === 'romfile') ?? [];
  return ctx.firmware(file, `${opt} ${file}`);
};

/** -vnc: a TCP display or a unix socket inside instances_path; the legacy x509 directories are refused. */
const vncRule: Rule = async (value, ctx, opt) => {
  for (const [k, v] of parseOpts(value, 'vnc')) {
    if (k === 'vnc' && v.startsWith('unix:')) {
      const why = await ctx.state(v.slice(5), `${opt} ${v}`);
      if (why !== null) return why;
    }
    if (k === 'x509' || k === 'x509verify') return `${opt} ${k}=${v} reads a host directory`;
  }
  return null;
};

const displayRule: Rule = (value, _ctx, opt) =>
  Promise.resolve(/^none(,|$)/.test(value) ? null : `${opt} ${value} is not relaunched (a relaunched guest runs with -display none or -vnc)`);

const keymapRule: Rule = (value, _ctx, opt) =>
  Promise.resolve(/^[a-z]{2}(-[a-z]{2,3})?$/.test(value) ? null : `${opt} ${value} is not a keymap name`);

const usbDeviceRule: Rule = (value, _ctx, opt) =>
  Promise.resolve(/^(tablet|mouse|keyboard|wacom-tablet)$/.test(value) ? null : `${opt} ${value} is not relaunched`);

/** The rule of every option a relaunch may carry (aliases spelled out). */
export const RULES: Readonly<Record<string, Rule>> = {
  '-name': plain, '-uuid': plain, '-m': plain, '-smp': plain, '-cpu': plain, '-accel': plain, '-rtc': plain,
  '-overcommit': plain, '-msg': plain, '-watchdog-action': plain, '-action': plain, '-numa': plain, '-compat': plain,
  '-vga': plain, '-d': plain, '-dfilter': plain, '-echr': plain, '-rotate': plain, '-append': plain, '-mon': plain,
  '-machine': keyedRule('type', MACHINE_FILES, ['dumpdtb']), '-M': keyedRule('type', MACHINE_FILES, ['dumpdtb']),
  '-boot': keyedRule('order', { splash: 'firmware' }),
  '-fw_cfg': keyedRule('name', { file: 'load' }),
  '-smbios': keyedRule(undefined, { file: 'load' }),
  '-acpitable': keyedRule(undefined, { file: 'load', data: 'load' }),
  '-drive': blockRule, '-blockdev': blockRule,
  '-hda': imageRule, '-hdb': imageRule, '-hdc': imageRule, '-hdd': imageRule, '-cdrom': imageRule,
  '-fda': imageRule, '-fdb': imageRule, '-sd': imageRule, '-mtdblock': imageRule, '-pflash': imageRule,
  '-kernel': loadRule, '-initrd': loadRule, '-dtb': loadRule, '-L': loadRule,
  '-bios': firmwareRule, '-option-rom': optionRomRule,
  '-device': deviceRule, '-global': globalRule, '-usbdevice': usbDeviceRule,
  '-chardev': chardevRule,
  '-serial': legacyChardevRule, '-parallel': legacyChardevRule, '-monitor': legacyChardevRule,
  '-qmp': legacyChardevRule, '-qmp-pretty': legacyChardevRule, '-debugcon': legacyChardevRule,
  '-netdev': netRule, '-net': netRule, '-nic': netRule,
  '-object': objectRule, '-audiodev': audioRule, '-audio': audioRule, '-tpmdev': tpmRule,
  '-vnc': vncRule, '-display': displayRule, '-k': keymapRule,
  '-D': stateRule, '-pidfile': stateRule,
};

/** Why the option `name` with `value` may not be relaunched, or null. Unknown options are refused. */
export async function optionVerdict(name: string, value: string, ctx: RuleContext): Promise<string | null> {
  const rule = Object.hasOwn(RULES, name) ? RULES[name] : undefined;
  if (rule === undefined) return `option ${name} is not relaunched`;
  return rule(value, ctx, name);
}
