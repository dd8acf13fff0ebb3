"""The oslo configuration the interop clients share (imported from beside them: a script's own directory
is first on sys.path)."""


def quiet_metrics(conf):
    """oslo.messaging's metrics sender is a non-daemon thread that outlives the last call by this many
    seconds (10 by default), holding the interpreter's exit for it; metrics are off, so it has nothing to
    send."""
    conf.set_override('metrics_thread_stop_timeout', 0, group='oslo_messaging_metrics')


def nova_conf(url, exchange):
    """Nova's CONF, set up as a Nova service sets it up for its own RPC clients, up to rpc.init (which the
    caller runs once its own overrides are in)."""
    import oslo_messaging as messaging
    import nova.conf
    from nova import objects
    objects.register_all()
    conf = nova.conf.CONF
    conf([], project='nova', default_config_files=[])
    quiet_metrics(conf)
    messaging.set_transport_defaults(control_exchange=exchange)
    # Creating a transport registers oslo.messaging's options (transport_url among them) on CONF.
    messaging.get_rpc_transport(conf, url=url).cleanup()
    conf.set_override('transport_url', url)
    return conf
