/**
 * `GET /metrics` (Prometheus text format), outside the ARP contract like /openapi.json: on the main
 * port, or only on a port of its own when `port` is set (`RC_METRICS_PORT`). It is authenticated
 * like every other path unless the operator lists `/metrics` in `ARP_AUTH_EXEMPT_PATHS`, on either
 * port. The per-request cost is one onSend hook observing a cached histogram child; event streams
 * are observed once, when they end.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { installAuth } from '../auth/hooks.js';
import type { InboundAuth } from '../auth/settings.js';
import type { JwtVerifier } from '../auth/verifier.js';
import type { Coordinator } from '../coordinator/coordinator.js';
import { Dispatcher } from '../coordinator/dispatcher.js';
import type { EventStreams } from '../events/streams.js';
import type { StreamRegistry } from '../http/ndjson.js';
import errorsPlugin from '../plugins/errors.js';
import { type Metrics, OTHER_OPERATION } from './metrics.js';

export const METRICS_PATH = '/metrics';

export interface MetricsRouteOptions {
  readonly metrics: Metrics;
  /** Serve /metrics only on this port (0 = any free one); absent = on the app's own port. */
  readonly port?: number;
  readonly auth: InboundAuth;
  readonly verifier: JwtVerifier | undefined;
  readonly coordinator: Coordinator;
  readonly events: EventStreams;
  /** Event streams end outside onSend; they are observed when they end. */
  readonly streams: StreamRegistry;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The app's metrics, and the server of their own port when one is configured (it is not listening yet). */
    metrics?: { readonly registry: Metrics['registry']; readonly server?: FastifyInstance };
  }
}

/** Call before the routes are added: the hook times every request. */
export function installMetrics(app: FastifyInstance, options: MetricsRouteOptions): void {
  const { metrics, coordinator } = options;
  const execution = coordinator.execution;
  const dispatcher = execution instanceof Dispatcher ? execution : undefined;
  dispatcher?.observeClaims(metrics.claimed);
  const store = coordinator.store as unknown as {
    observeCommits?: (observer: ReturnType<Metrics['storeCommits']>) => void;
    pool?: { totalCount: number; idleCount: number; waitingCount: number };
  };
  store.observeCommits?.(metrics.storeCommits(store.pool ? 'postgres' : 'memory'));
  metrics.attach({
    ...(dispatcher ? { dispatchQueue: () => dispatcher.queued } : {}),
    openStreams: () => options.events.stats().followStreams,
    ...(store.pool ? { pool: store.pool } : {}),
  });

  // onSend, not onResponse: an onResponse hook makes Fastify listen for the end of every response,
  // which costs more than the observation itself. The time is up to the answer being handed to
  // Node; event streams (which bypass onSend) are observed when they end (src/http/ndjson.ts).
  const observe = (reply: FastifyReply) =>
    metrics.request(
      reply.request.routeOptions.config.operationId ?? OTHER_OPERATION,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  app.addHook('onSend', (_request, reply, payload, done) => {
    observe(reply);
    done(null, payload);
  });
  options.streams.observeEnded(observe);
  const serve = async (_request: unknown, reply: FastifyReply) =>
    reply.type(metrics.registry.contentType).send(await metrics.scrape());
  let server: FastifyInstance | undefined;
  if (options.port === undefined) {
    app.get(METRICS_PATH, { schema: { hide: true } }, serve);
  } else {
    server = Fastify({ logger: false });
    // Errors answered as envelopes, as on the main port.
    server.register(errorsPlugin, { logger: undefined });
    // Same rule as the main port: authenticated unless /metrics is an exempt path.
    installAuth(server, {
      settings: options.auth,
      verifier: options.verifier,
      assignments: coordinator.store,
    });
    server.get(METRICS_PATH, serve);
    const own = server;
    app.addHook('onClose', () => own.close());
  }
  app.decorate('metrics', { registry: metrics.registry, ...(server ? { server } : {}) });
}
