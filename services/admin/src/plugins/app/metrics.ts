import fp from 'fastify-plugin';
import { Counter, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from '@switchboard/observability';

declare module 'fastify' {
  interface FastifyInstance {
    /** The service's Prometheus registry, served at `/metrics`. */
    metrics: Registry;
  }
}

export interface MetricsOptions {
  registry: Registry;
}

/** A route that did not match: its raw URL never becomes a label value. */
const UNMATCHED = 'unmatched';

/** HTTP metrics labelled by route template (`/v1/users/:userId`), never by raw URL. */
export default fp<MetricsOptions>(
  async (app, { registry }) => {
    app.decorate('metrics', registry);
    const registers = [registry];
    const requests =
      (registry.getSingleMetric('switchboard_admin_http_requests_total') as Counter<'method' | 'route' | 'status'> | undefined) ??
      new Counter({
        name: 'switchboard_admin_http_requests_total',
        help: 'Admin API requests answered, by method, route template and status',
        labelNames: ['method', 'route', 'status'] as const,
        registers,
      });
    const duration =
      (registry.getSingleMetric('switchboard_admin_http_request_duration_seconds') as Histogram<'method' | 'route'> | undefined) ??
      new Histogram({
        name: 'switchboard_admin_http_request_duration_seconds',
        help: 'Admin API request duration, by method and route template',
        labelNames: ['method', 'route'] as const,
        buckets: LATENCY_BUCKETS,
        registers,
      });

    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? UNMATCHED;
      const method = request.method;
      requests.inc({ method, route, status: String(reply.statusCode) });
      duration.observe({ method, route }, reply.elapsedTime / 1000);
    });
  },
  { name: 'metrics' },
);
