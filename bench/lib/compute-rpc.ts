// The load generator's caller side: the project's own oslo-wire RpcClient (what novamon-manage and the API
// use) addressing compute.<host>, with the Instance primitive and arguments Nova's rpcapi sends.

import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { AmqpConnectionManager } from '../../src/rpc/amqp-connection.js';
import { RpcClient, type RpcTarget } from '../../src/rpc/client.js';
import { instancePrimitive } from '../../src/rpc/objects/instance.js';
import type { BenchGuest } from './guests.js';

export const BENCH_METHODS = ['get_console_output', 'get_instance_diagnostics', 'get_vnc_console'] as const;
export type BenchMethod = (typeof BENCH_METHODS)[number];

/** A Nova user's context, as the API would forward it (not admin: these calls need no admin). */
const userContext = {
  userId: 'bench-user',
  projectId: 'bench-project',
  isAdmin: false,
  roles: ['member', 'reader'],
  raw: {},
};
const adminCtx = { userId: 'bench-admin', projectId: 'bench-project', isAdmin: true, roles: ['admin'], raw: {} };

export class ComputeCaller {
  readonly target: RpcTarget;
  private constructor(
    readonly connection: AmqpConnectionManager,
    readonly client: RpcClient,
    private readonly host: string,
  ) {
    this.target = { topic: 'compute', server: host, version: '6.0' };
  }

  static async open(transportUrl: string, exchange: string, host: string): Promise<ComputeCaller> {
    const logger = pino({ level: 'silent' });
    const connection = new AmqpConnectionManager({ transportUrl, logger, heartbeatSeconds: 60, connectionName: 'novamon-bench' });
    await connection.connect(10_000);
    const client = new RpcClient({ connection, exchange, timeoutMs: 30_000, logger });
    return new ComputeCaller(connection, client, host);
  }

  /** One of the benchmarked compute calls on `g`. */
  call(method: BenchMethod, g: Pick<BenchGuest, 'uuid' | 'id'>, timeoutMs = 30_000): Promise<unknown> {
    const instance = instancePrimitive({ uuid: g.uuid, id: g.id, host: this.host });
    const args: Record<string, unknown> =
      method === 'get_console_output'
        ? { instance, tail_length: 50 }
        : method === 'get_vnc_console'
          ? { instance, console_type: 'novnc' }
          : { instance };
    return this.client.call(this.target, { ...userContext, requestId: `req-${randomUUID()}` }, method, args, { timeoutMs });
  }

  /** novamon's monitor_command extension (admin), e.g. `{"execute":"stop"}`. */
  monitorCommand(g: BenchGuest, qmpJson: string, timeoutMs = 30_000): Promise<unknown> {
    const instance = instancePrimitive({ uuid: g.uuid, id: g.id, host: this.host });
    return this.client.call(this.target, { ...adminCtx, requestId: `req-${randomUUID()}` }, 'monitor_command', { instance, command: qmpJson }, { timeoutMs });
  }

  hostUptime(timeoutMs: number): Promise<unknown> {
    return this.client.call(this.target, { ...adminCtx, requestId: `req-${randomUUID()}` }, 'get_host_uptime', {}, { timeoutMs });
  }

  async close(): Promise<void> {
    await this.client.close();
    await this.connection.close();
  }
}
