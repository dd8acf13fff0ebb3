// `novamon-manage instance screenshot NAME -o FILE.png`: the guest's screen, through the novamon-compute
// service that holds the monitor (novamon's get_screenshot RPC), or with --direct straight to the
// monitor socket when the service is stopped. Both are audited as a `screendump` monitor command.

import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { z } from 'zod';
import type { ManageServices } from './manage.js';

const reply = z.object({ mime_type: z.literal('image/png'), width: z.number().int(), height: z.number().int(), data: z.string() });

type Runner = (fn: (s: ManageServices) => Promise<unknown>) => () => Promise<void>;

export function screenshotCommand(run: Runner): Command {
  return new Command('screenshot')
    .argument('<instance>', 'instance name (or uuid with the RPC path)')
    .description('save a PNG of the guest\'s screen (QEMU screendump)')
    .requiredOption('-o, --output <file>', 'where to write the PNG')
    .option('--direct', 'ask the guest\'s monitor socket directly (only while novamon-compute is not holding it)')
    .option('--server <host>', 'compute host (default: [DEFAULT] host)')
    .option('--timeout <seconds>', 'reply timeout', (v: string) => Number(v), 60)
    .action((name: string, opts: { output: string; direct?: boolean; server?: string; timeout: number }) =>
      run(async (s) => {
        let png: Buffer;
        let width: number;
        let height: number;
        if (opts.direct) {
          ({ png, width, height } = await s.screenshotDirect(name));
        } else {
          const answer = reply.parse(
            await s.rpcCall({
              method: 'get_screenshot',
              namespace: 'novamon',
              instance: name,
              args: {},
              cast: false,
              server: opts.server,
              version: '1.0',
              timeoutSeconds: opts.timeout,
              context: { isAdmin: true, roles: ['admin'] },
            }),
          );
          png = Buffer.from(answer.data, 'base64');
          ({ width, height } = answer);
        }
        await writeFile(opts.output, png, { mode: 0o600 });
        return { file: opts.output, width, height, bytes: png.length };
      })(),
    );
}
