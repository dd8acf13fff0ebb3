"""oslo.messaging's own notification listener, as a Ceilometer-style consumer runs it.

Usage: notification_listener.py '<json spec>'   spec = {"url", "exchange", "topics": [...]}
Prints {"ready": true} once consuming, then one JSON line per notification received
({"priority", "publisher_id", "event_type", "payload", "metadata", "ctxt"}), until stdin closes.
"""
import json
import sys
import threading

import oslo_messaging as messaging
from oslo_config import cfg


class Endpoint(object):
    def __init__(self):
        self.lock = threading.Lock()

    def _emit(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            print(json.dumps({'priority': priority, 'publisher_id': publisher_id,
                              'event_type': event_type, 'payload': payload,
                              'metadata': metadata, 'ctxt': ctxt}), flush=True)
        return messaging.NotificationResult.HANDLED

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._emit('INFO', ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._emit('ERROR', ctxt, publisher_id, event_type, payload, metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._emit('WARN', ctxt, publisher_id, event_type, payload, metadata)


def main():
    spec = json.loads(sys.argv[1])
    conf = cfg.CONF
    conf([], project='novamon-interop')
    transport = messaging.get_notification_transport(conf, url=spec['url'])
    targets = [messaging.Target(topic=t, exchange=spec['exchange']) for t in spec['topics']]
    listener = messaging.get_notification_listener(transport, targets, [Endpoint()],
                                                   executor='threading')
    listener.start()
    print(json.dumps({'ready': True}), flush=True)
    sys.stdin.read()
    listener.stop()
    listener.wait()
    transport.cleanup()


if __name__ == '__main__':
    main()
