/** Prometheus metrics at `/metrics` (RC_METRICS, RC_METRICS_PORT; see src/metrics). */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { installMetrics, type MetricsRouteOptions } from '../metrics/plugin.js';

async function metrics(app: FastifyInstance, options: MetricsRouteOptions) {
  installMetrics(app, options);
}

export default fp(metrics, { name: 'arp-rc-metrics' });
