import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The Prometheus registry and the metrics every component shares. Components add their own
 * metrics to `registry`; labels stay bounded (no ids, no free text).
 */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly agentsDeployed: Gauge<'origin'>;
  readonly agentEvents: Counter<'event'>;
  readonly errors: Counter<'code'>;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'caxton_' });
    this.httpRequests = new Counter({ name: 'caxton_http_requests_total', help: 'HTTP requests served by the REST API', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
    this.httpDuration = new Histogram({
      name: 'caxton_http_request_duration_seconds',
      help: 'REST API request duration',
      labelNames: ['method', 'route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.agentsDeployed = new Gauge({ name: 'caxton_agents_deployed', help: 'Agents currently deployed', labelNames: ['origin'], registers: [this.registry] });
    this.agentEvents = new Counter({ name: 'caxton_agent_events_total', help: 'Agent lifecycle events (deployed, updated, removed, invalid_file)', labelNames: ['event'], registers: [this.registry] });
    this.errors = new Counter({ name: 'caxton_errors_total', help: 'Errors returned by the API, by error code', labelNames: ['code'], registers: [this.registry] });
  }
}
