"""A fanout cast to every compute host, with Nova's own compute RPC client (nova.compute.rpcapi).

Usage: fanout_cast.py '<json spec>'   spec = {"url", "exchange", "method", "version"}
Casts `method` (no arguments) to the `compute` topic with fanout=True and prints {"ok": true}.
"""
import json
import sys


def main():
    spec = json.loads(sys.argv[1])
    import oslo_messaging as messaging
    import nova.conf
    from nova.compute import rpcapi as compute_rpcapi
    from nova import context, objects, rpc
    objects.register_all()
    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[])
    # oslo.messaging's metrics sender is a non-daemon thread that outlives the last call by this many seconds
    # (10 by default), holding the interpreter's exit for it; metrics are off, so it has nothing to send.
    conf.set_override('metrics_thread_stop_timeout', 0, group='oslo_messaging_metrics')
    messaging.set_transport_defaults(control_exchange=spec['exchange'])
    # Creating a transport registers oslo.messaging's options (transport_url among them) on CONF.
    messaging.get_rpc_transport(conf, url=spec['url']).cleanup()
    conf.set_override('transport_url', spec['url'])
    rpc.init(conf)
    ctxt = context.get_admin_context()
    client = compute_rpcapi.ComputeAPI().router.client(ctxt)
    client.prepare(fanout=True, version=spec['version']).cast(ctxt, spec['method'])
    rpc.cleanup()
    print(json.dumps({'ok': True}))


if __name__ == '__main__':
    main()
