// Starts the private RabbitMQ node and PostgreSQL server the resilience suite injects its faults into,
// once for all its files (each file then uses its own exchange, host name and database), and stops them.

import type { TestProject } from 'vitest/node';
import { canRunPrivatePostgres, startPrivatePostgres, type PrivatePostgres } from '../fixtures/private-postgres.js';
import { canRunPrivateRabbit, startPrivateRabbit, type PrivateRabbit } from '../fixtures/private-rabbit.js';

declare module 'vitest' {
  export interface ProvidedContext {
    privateRabbit: { nodeName: string; port: number; dir: string } | null;
    privatePostgres: { port: number; dir: string } | null;
  }
}

let rabbit: PrivateRabbit | null = null;
let pg: PrivatePostgres | null = null;

export async function setup(project: TestProject): Promise<void> {
  const [r, p] = await Promise.all([
    canRunPrivateRabbit() ? startPrivateRabbit() : Promise.resolve(null),
    canRunPrivatePostgres() ? startPrivatePostgres() : Promise.resolve(null),
  ]);
  rabbit = r;
  pg = p;
  project.provide('privateRabbit', r ? { nodeName: r.nodeName, port: r.port, dir: r.dir } : null);
  project.provide('privatePostgres', p ? { port: p.port, dir: p.dataDir.replace(/\/data$/, '') } : null);
}

export async function teardown(): Promise<void> {
  await Promise.allSettled([rabbit?.stop(), pg?.stop()]);
}
