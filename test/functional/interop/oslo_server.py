"""Python oslo.messaging RPC server for proving our RpcClient.

Usage: oslo_server.py '<json spec>'   spec = {"url", "exchange", "topic", "server"}
Prints READY once consuming; stops when stdin closes. Endpoint version 6.1.
"""
import json
import sys
import threading

import oslo_messaging as messaging
from oslo_config import cfg

import nova.exception


class Endpoint(object):
    target = messaging.Target(version='6.1')

    def __init__(self):
        self.casts = []

    def echo(self, ctxt, **kwargs):
        return {'args': kwargs, 'user_id': ctxt.get('user_id'), 'request_id': ctxt.get('request_id')}

    def fail_not_found(self, ctxt, uuid):
        raise nova.exception.InstanceNotFound(instance_id=uuid)

    def record(self, ctxt, **kwargs):
        self.casts.append(kwargs)

    def get_casts(self, ctxt):
        return self.casts


def main():
    spec = json.loads(sys.argv[1])
    messaging.set_transport_defaults(control_exchange=spec['exchange'])
    conf = cfg.CONF  # oslo registers some options (metrics) on the global CONF only
    conf([], project='novamon-interop')
    transport = messaging.get_rpc_transport(conf, url=spec['url'])
    conf.set_override('rabbit_transient_queues_ttl', 5, group='oslo_messaging_rabbit')
    target = messaging.Target(topic=spec['topic'], server=spec['server'])
    server = messaging.get_rpc_server(transport, target, [Endpoint()], executor='threading',
                                      access_policy=messaging.DefaultRPCAccessPolicy)
    server.start()
    print('READY', flush=True)
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait()
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == '__main__':
    main()
