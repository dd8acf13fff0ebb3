// The resilience suites inject faults into a private RabbitMQ node and PostgreSQL server that the global
// set-up starts (it needs root to run them as their own users). They must run, never skip quietly.
import { expect, inject, it } from 'vitest';

it('has a private RabbitMQ node and PostgreSQL server to inject faults into', () => {
  expect(inject('privateRabbit'), 'private RabbitMQ node').not.toBeNull();
  expect(inject('privatePostgres'), 'private PostgreSQL server').not.toBeNull();
});
