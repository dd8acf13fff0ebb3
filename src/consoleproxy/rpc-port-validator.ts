// validate_console_port over the compute RPC API, as nova-novncproxy asks it: an admin context, the
// instance addressed by uuid on the compute host that owns it, and a boolean answer.

import { newRequestId } from '../rpc/context.js';
import type { RpcClient } from '../rpc/client.js';
import { instancePrimitive } from '../rpc/objects/instance.js';
import type { ConsolePortValidator } from './authorizer.js';

/** Compute RPC version the call is pinned to; validate_console_port is unchanged since 4.x. */
export const CONSOLE_RPC_VERSION = '6.0';

export class RpcConsolePortValidator implements ConsolePortValidator {
  constructor(
    private readonly client: Pick<RpcClient, 'call'>,
    private readonly timeoutMs: number,
  ) {}

  async validate(req: { instanceUuid: string; computeHost: string; port: number; consoleType: string }): Promise<boolean> {
    const result = await this.client.call(
      { topic: 'compute', server: req.computeHost, version: CONSOLE_RPC_VERSION },
      { isAdmin: true, roles: ['admin'], requestId: newRequestId() },
      'validate_console_port',
      { instance: instancePrimitive({ uuid: req.instanceUuid, host: req.computeHost }), port: req.port, console_type: req.consoleType },
      { timeoutMs: this.timeoutMs },
    );
    return result === true;
  }
}
