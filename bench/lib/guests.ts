// Starts the benchmark's fixture guests (test/fixtures/guest.ts, the way libvirt starts QEMU) in parallel
// batches — TCG guests are slow to start and the machine is shared — and waits for them to have booted,
// so boot-time CPU does not land in the measurements.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startFixtureGuest, waitForFileText, FIXTURE_CONSOLE_LINE, type FixtureGuest } from '../../test/fixtures/guest.js';
import { progress } from './progress.js';

export interface BenchGuest {
  guest: FixtureGuest;
  id: number;
  uuid: string;
}

/** Ids far from the ones tests use; names are instance-%08x of them (the default template). */
export const FIRST_GUEST_ID = 0xbe000;

export function guestName(id: number): string {
  return `instance-${id.toString(16).padStart(8, '0')}`;
}

export async function startGuests(instancesPath: string, count: number, batch: number, firstId = FIRST_GUEST_ID): Promise<BenchGuest[]> {
  const out: BenchGuest[] = [];
  for (let i = 0; i < count; i += batch) {
    const ids = Array.from({ length: Math.min(batch, count - i) }, (_, k) => firstId + i + k);
    const started = await Promise.allSettled(
      ids.map(async (id) => {
        const uuid = randomUUID();
        const guest = await startFixtureGuest({ instancesPath, name: guestName(id), uuid, vnc: true, startTimeoutSeconds: 120 });
        return { guest, id, uuid };
      }),
    );
    for (const s of started) {
      if (s.status === 'fulfilled') out.push(s.value);
      else throw s.reason instanceof Error ? s.reason : new Error(String(s.reason));
    }
    progress(`guests: ${out.length}/${count} started in ${path.basename(instancesPath)}/`);
  }
  return out;
}

/** Wait until every guest printed its boot line (bounded; a slow guest only costs a warning). */
export async function waitBooted(guests: readonly BenchGuest[], timeoutMs: number): Promise<number> {
  const results = await Promise.allSettled(guests.map((g) => waitForFileText(g.guest.consoleLogPath, FIXTURE_CONSOLE_LINE, timeoutMs)));
  const late = results.filter((r) => r.status === 'rejected').length;
  if (late > 0) progress(`warning: ${late} guest(s) had not printed their boot line after ${timeoutMs} ms`);
  return guests.length - late;
}

export async function stopGuests(guests: readonly BenchGuest[]): Promise<void> {
  await Promise.allSettled(guests.map((g) => g.guest.stop()));
}
