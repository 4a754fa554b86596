/**
 * The app's life: every answer names its request (`x-request-id`); once shutdown begins, requests on
 * kept-alive connections get a retryable 503 and the connection ends (the probes answer for
 * themselves); `/readyz` and `/livez`; the coordinator's start before serving, its stop, the end of
 * open streams and the store's close.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Coordinator } from '../coordinator/coordinator.js';
import { installProbes, PROBE_ROUTES, type Probes } from '../health/probes.js';
import { envelope } from '../http/envelope.js';
import type { StreamRegistry } from '../http/ndjson.js';
import type { Store } from '../store/store.js';

export interface LifecycleOptions {
  readonly coordinator: Coordinator;
  readonly store: Store;
  readonly streams: StreamRegistry;
}

async function lifecycle(app: FastifyInstance, { coordinator, store, streams }: LifecycleOptions) {
  const probes: Probes = { ready: false, closing: false };
  // A callback hook: cheaper per request than an async one. The first hook of every request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // Probes answer for themselves while closing: /readyz its own 503, /livez 200.
    if (!probes.closing || PROBE_ROUTES.has(request.url.split('?')[0] ?? '')) return done();
    // Shutting down: a request on a kept-alive connection gets a retryable 503 and the connection ends.
    reply
      .code(503)
      .header('connection', 'close')
      .send(envelope('service_unavailable', 'The service is shutting down', undefined, true));
  });
  installProbes(app, probes);

  // With a shared store: finish what stopped processes left (first pass before serving), then on schedule.
  app.addHook('onReady', async () => {
    await coordinator.start();
    probes.ready = true;
  });
  app.addHook('preClose', () => {
    probes.closing = true;
    coordinator.stop();
    return streams.endAll();
  });
  app.addHook('onClose', async () => {
    await coordinator.close();
    await store.close();
  });
}

export default fp(lifecycle, { name: 'arp-rc-lifecycle' });
