"""A fanout cast to every compute host, with Nova's own compute RPC client (nova.compute.rpcapi).

Usage: fanout_cast.py '<json spec>'   spec = {"url", "exchange", "method", "version"}
Casts `method` (no arguments) to the `compute` topic with fanout=True and prints {"ok": true}.
"""
import json
import sys


def main():
    spec = json.loads(sys.argv[1])
    from nova.compute import rpcapi as compute_rpcapi
    from nova import context, rpc
    from interop_conf import nova_conf
    conf = nova_conf(spec['url'], spec['exchange'])
    rpc.init(conf)
    ctxt = context.get_admin_context()
    client = compute_rpcapi.ComputeAPI().router.client(ctxt)
    client.prepare(fanout=True, version=spec['version']).cast(ctxt, spec['method'])
    rpc.cleanup()
    print(json.dumps({'ok': True}))


if __name__ == '__main__':
    main()
