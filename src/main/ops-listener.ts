// novamon-compute's small operations listener ([oslo_middleware]): /healthcheck answers 200 while
// RabbitMQ and the database answer, 503 with the reason otherwise; /metrics serves Prometheus text.

import Fastify from 'fastify';
import type { Config } from '../config/options.js';
import type { Database } from '../db/knex.js';
import type { Logger } from '../logging.js';
import type { Metrics } from '../metrics.js';
import type { AmqpConnectionManager } from '../rpc/amqp-connection.js';

export interface OpsDependencies {
  db: Database;
  connection: AmqpConnectionManager;
  metrics: Metrics;
  /** Called before /metrics renders, to copy counters kept elsewhere into gauges. */
  refresh?: () => void;
}

export async function healthProblems(deps: Pick<OpsDependencies, 'db' | 'connection'>): Promise<string[]> {
  const problems: string[] = [];
  if (!deps.connection.isConnected()) problems.push('RabbitMQ is not connected');
  try {
    await deps.db.ping(2000);
  } catch (err) {
    problems.push(`database does not answer: ${(err as Error).message}`);
  }
  return problems;
}

export async function startOpsListener(config: Config, logger: Logger, deps: OpsDependencies): Promise<{ close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  app.get('/healthcheck', async (_req, reply) => {
    const problems = await healthProblems(deps);
    reply.type('text/plain; charset=UTF-8');
    if (problems.length > 0) return reply.code(503).send(problems.join('\n'));
    return reply.code(200).send('OK');
  });
  app.get('/metrics', async (_req, reply) => {
    deps.refresh?.();
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  await app.listen({ host: config.oslo_middleware.listen, port: config.oslo_middleware.port });
  logger.info({ component: 'ops', listen: config.oslo_middleware.listen, port: config.oslo_middleware.port }, 'health and metrics listener up');
  return { close: () => app.close() };
}
