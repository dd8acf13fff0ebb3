// Prometheus metrics shared by the services (prom-client): RPC calls by method and result with a
// latency histogram, QMP connections and commands, lifecycle events, database errors, HTTP requests.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How often the nodejs_eventloop_lag_* histogram samples the loop, ms. */
const LAG_SAMPLING_MS = 20;

export class Metrics {
  readonly registry = new Registry();
  readonly rpcCalls: Counter<'method' | 'kind' | 'outcome'>;
  readonly rpcLatency: Histogram<'method' | 'kind'>;
  readonly qmpConnections: Gauge;
  readonly qmpCommands: Gauge;
  readonly qmpErrors: Gauge;
  readonly lifecycleEvents: Gauge;
  readonly dbErrors: Counter;
  readonly httpRequests: Counter<'route' | 'method' | 'code'>;
  readonly httpLatency: Histogram<'route' | 'method'>;

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    // The event-loop lag histogram samples on a native timer: every 20 ms rather than prom-client's
    // default 10 halves the wake-ups it costs an idle service; a scrape every 15 s loses nothing by it.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: LAG_SAMPLING_MS });
    const registers = [this.registry];
    this.rpcCalls = new Counter({ name: 'novamon_rpc_messages_total', help: 'RPC messages handled, by method, kind and outcome', labelNames: ['method', 'kind', 'outcome'], registers });
    this.rpcLatency = new Histogram({
      name: 'novamon_rpc_duration_seconds',
      help: 'Time from delivery to reply published (calls) or work done (casts)',
      labelNames: ['method', 'kind'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.qmpConnections = new Gauge({ name: 'novamon_qmp_connections', help: 'Open QMP monitor connections', registers });
    this.qmpCommands = new Gauge({ name: 'novamon_qmp_commands_total', help: 'QMP commands sent since start', registers });
    this.qmpErrors = new Gauge({ name: 'novamon_qmp_errors_total', help: 'QMP commands that failed since start', registers });
    this.lifecycleEvents = new Gauge({ name: 'novamon_lifecycle_events_total', help: 'Lifecycle events handled since start', registers });
    this.dbErrors = new Counter({ name: 'novamon_db_errors_total', help: 'Database operations that failed', registers });
    this.httpRequests = new Counter({ name: 'novamon_http_requests_total', help: 'HTTP requests by route, method and status code', labelNames: ['route', 'method', 'code'], registers });
    this.httpLatency = new Histogram({
      name: 'novamon_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
  }
}
