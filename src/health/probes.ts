/**
 * Readiness and liveness probes for orchestrators, outside the ARP paths (and so outside the
 * contract): `GET /readyz` is 200 once the app is ready (the store open and migrated, the
 * reconciler's first pass done) and 503 before that and from the moment shutdown begins, so that a
 * load balancer stops sending work while in-flight requests finish; `GET /livez` is 200 for as long
 * as the event loop turns. Both carry nothing and are exempt from inbound authentication.
 */
import type { FastifyInstance } from 'fastify';
import { envelope } from '../http/envelope.js';

export const PROBE_ROUTES: ReadonlySet<string> = new Set(['/readyz', '/livez']);

/** The app's lifecycle as the probes see it; the app flips the flags. */
export interface Probes {
  /** Set once `onReady` has finished (the reconciler's first pass included). */
  ready: boolean;
  /** Set when close begins (preClose). */
  closing: boolean;
}

export function installProbes(app: FastifyInstance, probes: Probes): void {
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    if (probes.ready && !probes.closing) return reply.code(200).send({ status: 'ready' });
    const state = probes.closing ? 'shutting_down' : 'starting';
    return reply
      .code(503)
      .send(
        envelope(
          'service_unavailable',
          probes.closing ? 'The service is shutting down' : 'The service is starting',
          { state },
          true,
        ),
      );
  });
  app.get('/livez', { schema: { hide: true } }, async (_request, reply) =>
    reply.code(200).send({ status: 'alive' }),
  );
}
