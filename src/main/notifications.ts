// The notifications novamon-compute sends, from [oslo_messaging_notifications] and [notifications] as
// Nova reads them (nova/rpc.py): versioned notifications go to versioned_notifications_topics when
// notification_format is versioned or both and a driver other than noop is set. The legacy
// (unversioned) compute.instance.* notifications are not sent; a configuration asking for them is
// told so at start-up.

import type { Config } from '../config/options.js';
import { VersionedComputeNotifier, type InstanceDetailsSource } from '../compute/notifications.js';
import type { ComputeNotifierShape } from '../compute/tokens.js';
import type { Logger } from '../logging.js';
import type { AmqpConnectionManager } from '../rpc/amqp-connection.js';
import { OsloNotifier } from '../rpc/notifier.js';
import { amqpConnection, queueFlags } from './service.js';

export interface ComputeNotifications {
  /** The compute layer's notifier, reading instance fields from `details` at notify time. */
  notifier(details: InstanceDetailsSource): ComputeNotifierShape;
  close(): Promise<void>;
}

export function computeNotifications(config: Config, connection: AmqpConnectionManager, logger: Logger): ComputeNotifications | null {
  const drivers = config.oslo_messaging_notifications.driver.filter((d) => d !== 'noop');
  const format = config.notifications.notification_format;
  const log = logger.child({ component: 'notifications' });
  if (drivers.length === 0) return null;
  if (format !== 'versioned') {
    log.warn({ notification_format: format }, 'legacy (unversioned) compute.instance.* notifications are not sent; set [notifications] notification_format = versioned');
  }
  if (format === 'unversioned') return null;
  const url = config.oslo_messaging_notifications.transport_url;
  const own = url !== '' && url !== config.DEFAULT.transport_url ? amqpConnection({ ...config, DEFAULT: { ...config.DEFAULT, transport_url: url } }, logger, 'novamon-compute-notifications') : null;
  const wire = new OsloNotifier({
    connection: own ?? connection,
    exchange: config.DEFAULT.control_exchange,
    drivers,
    topics: config.notifications.versioned_notifications_topics,
    flags: queueFlags(config),
    logger,
  });
  return {
    notifier: (details) => new VersionedComputeNotifier(wire, details, config.DEFAULT.host, log),
    close: async () => {
      await wire.close();
      await own?.close();
    },
  };
}

