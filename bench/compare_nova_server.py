"""novamon bench --compare-nova: a Python oslo.messaging RPC server answering get_console_output.

The endpoint does what Nova's libvirt driver does for a guest whose serial console is logged to a file:
read at most the last 100 KiB of the log, keep the last tail_length lines, decode as ASCII with
replacement characters. It is Nova's RPC stack (oslo.messaging, threading executor) plus that file read,
not nova-compute itself (no database, no objects layer, no libvirt connection).

usage: compare_nova_server.py TRANSPORT_URL EXCHANGE SERVER CONSOLE_DIR   (prints "ready" when serving)
"""
import os
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging as messaging

MAX_CONSOLE_BYTES = 100 * 1024


class ComputeEndpoint(object):
    target = messaging.Target(version='6.1')

    def __init__(self, console_dir):
        self.console_dir = console_dir

    def get_console_output(self, ctxt, instance, tail_length=None):
        data = instance.get('nova_object.data', instance)
        path = os.path.join(self.console_dir, 'instance-%08x.console.log' % int(data['id']))
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - MAX_CONSOLE_BYTES))
            log = f.read()
        if tail_length is not None:
            n = int(tail_length)
            log = b'\n'.join(log.split(b'\n')[-n:]) if n > 0 else b''
        return log.decode('ascii', 'replace')


def main():
    url, exchange, server, console_dir = sys.argv[1:5]
    conf = cfg.ConfigOpts()
    conf([], project='novamon-bench')
    transport = messaging.get_rpc_transport(conf, url=url)
    target = messaging.Target(exchange=exchange, topic='compute', server=server)
    rpc = messaging.get_rpc_server(transport, target, [ComputeEndpoint(console_dir)], executor='threading')
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    rpc.start()
    print('ready', flush=True)
    # Never outlive the benchmark: stdin closes when it exits.
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    rpc.stop()
    rpc.wait()
    transport.cleanup()


if __name__ == '__main__':
    main()
