"""Nova's own compute RPC client (nova.compute.rpcapi.ComputeAPI, Zed) driving novamon-compute.

Usage: nova_rpcapi.py '<json spec>'
spec = {"url", "exchange", "host", "instance": {"uuid", "id", ...Instance fields}, "ops": [{"method", "args"?}],
        "context"?: RequestContext kwargs (default: user u1, project p1, admin)}
Each op calls the ComputeAPI method of that name with (context, instance, **args) and prints, per op,
{"ok": true, "result": <JSON-able result>} or {"ok": false, "class", "module", "kwargs", "message"}.
Objects in results (Diagnostics) are checked by Nova's own deserializer and shown as their fields.
"""
import json
import sys


def jsonable(value):
    from nova.objects import base
    if isinstance(value, base.NovaObject):
        return {'__object__': value.obj_name(), **{k: jsonable(getattr(value, k)) for k in value.fields if value.obj_attr_is_set(k)}}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def main():
    spec = json.loads(sys.argv[1])
    from nova import context, exception, objects, rpc
    from interop_conf import nova_conf
    conf = nova_conf(spec['url'], spec['exchange'])
    conf.set_override('compute', spec.get('version_cap', '6.1'), group='upgrade_levels')
    conf.set_override('rabbit_transient_queues_ttl', 5, group='oslo_messaging_rabbit')
    rpc.init(conf)
    from nova.compute import rpcapi
    api = rpcapi.ComputeAPI()
    from oslo_messaging.rpc import client as rpc_client
    conf.register_opts(rpc_client._client_opts)  # rpc_response_timeout; registered lazily otherwise
    conf.set_override('rpc_response_timeout', spec.get('timeout', 10))
    def new_context():
        # Every API request Nova makes has its own request id (oslo.context generates req-<uuid>).
        kwargs = spec.get('context') or {'user_id': 'u1', 'project_id': 'p1', 'is_admin': True, 'roles': ['admin']}
        return context.RequestContext(**kwargs)

    ctxt = new_context()
    fields = dict(spec['instance'])
    fields.setdefault('host', spec['host'])
    instance = objects.Instance(ctxt, **fields)
    instance.obj_reset_changes()
    out = []
    try:
        for op in spec['ops']:
            ctxt = new_context()
            try:
                result = getattr(api, op['method'])(ctxt, instance, **op.get('args', {}))
                out.append({'ok': True, 'result': jsonable(result), 'request_id': ctxt.request_id})
            except Exception as exc:  # noqa: BLE001 - the test asserts on what was raised
                cls = type(exc)
                if cls.__name__.endswith('_Remote'):
                    cls = cls.__mro__[1]
                out.append({'ok': False, 'class': cls.__name__, 'module': cls.__module__,
                            'is_nova_exception': isinstance(exc, exception.NovaException),
                            'kwargs': {k: v for k, v in (getattr(exc, 'kwargs', None) or {}).items() if k != 'code'},
                            'message': str(exc).split('\n')[0]})
    finally:
        rpc.cleanup()
    print(json.dumps(out, default=str))


if __name__ == '__main__':
    main()
