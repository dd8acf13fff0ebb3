"""Python oslo.messaging RPCClient driving a server under test.

Usage: oslo_client.py '<json spec>'
spec = {"url", "exchange", "topic", "server"?, "context"?, "ops": [{"kind": "call"|"cast", "method", "args", "version", "timeout"?, "fanout"?}]}
Prints one JSON list to stdout: per op {"ok": true, "result": ...} or {"ok": false, ...exception facts}.
"""
import json
import sys

import oslo_messaging as messaging
from oslo_config import cfg

import nova.exception

from interop_conf import quiet_metrics


def describe(exc):
    base = type(exc).__mro__[1] if type(exc).__name__.endswith('_Remote') else type(exc)
    return {
        'ok': False,
        'type': type(exc).__name__,
        'base_class': base.__name__,
        'base_module': base.__module__,
        'is_nova_exception': isinstance(exc, nova.exception.NovaException),
        'is_instance_not_found': isinstance(exc, nova.exception.InstanceNotFound),
        'is_remote_error': isinstance(exc, messaging.RemoteError),
        'is_timeout': isinstance(exc, messaging.MessagingTimeout),
        'exc_type': getattr(exc, 'exc_type', None),
        'kwargs': {k: v for k, v in (getattr(exc, 'kwargs', None) or {}).items() if k != 'code'},
        'message': str(exc).split('\n')[0],
    }


def main():
    spec = json.loads(sys.argv[1])
    messaging.set_transport_defaults(control_exchange=spec['exchange'])
    conf = cfg.CONF  # oslo registers some options (metrics) on the global CONF only
    conf([], project='novamon-interop')
    quiet_metrics(conf)
    transport = messaging.get_rpc_transport(conf, url=spec['url'], allowed_remote_exmods=['nova.exception'])
    # Our reply queue vanishes soon after we exit.
    conf.set_override('rabbit_transient_queues_ttl', 5, group='oslo_messaging_rabbit')
    ctxt = spec.get('context') or {'user_id': 'u1', 'project_id': 'p1', 'is_admin': True, 'request_id': 'req-interop',
                                   'roles': ['admin']}
    out = []
    try:
        for op in spec['ops']:
            target = messaging.Target(topic=spec['topic'], server=spec.get('server'), version=op.get('version', '6.0'),
                                      fanout=op.get('fanout', False))
            client = messaging.RPCClient(transport, target, timeout=op.get('timeout', 5))
            try:
                if op['kind'] == 'call':
                    out.append({'ok': True, 'result': client.call(ctxt, op['method'], **op.get('args', {}))})
                else:
                    client.cast(ctxt, op['method'], **op.get('args', {}))
                    out.append({'ok': True, 'result': None})
            except Exception as exc:  # noqa: BLE001 - the test asserts on what was raised
                out.append(describe(exc))
    finally:
        transport.cleanup()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
