/**
 * Requests no route takes: 404, or 405 with `Allow` when the path exists with other methods,
 * answered before the body is read (its media type, syntax or size would otherwise decide the
 * status). Registered after authentication, so unknown routes still say 401 first.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ArpError } from '../errors.js';
import { PROBE_ROUTES } from '../health/probes.js';
import type { PathMatcher } from '../http/route-match.js';

/** The error for a request no route takes. */
export function routeMissError(matcher: PathMatcher) {
  return (request: FastifyRequest): ArpError => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = PROBE_ROUTES.has(path) ? ['GET'] : matcher.allowedMethods(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return new ArpError('method_not_allowed', `Method ${request.method} is not allowed on ${path}`, {
        details: { allowed_methods: allowed },
        headers: { allow: allowed.join(', ') },
      });
    }
    return new ArpError('not_found', `No route for ${request.method} ${path}`);
  };
}

export interface RoutingOptions {
  readonly routeMissError: (request: FastifyRequest) => ArpError;
}

async function routing(app: FastifyInstance, { routeMissError }: RoutingOptions) {
  app.addHook('onRequest', (request, _reply, done) =>
    done(request.is404 ? routeMissError(request) : undefined),
  );
  app.setNotFoundHandler((request) => {
    throw routeMissError(request);
  });
}

export default fp(routing, { name: 'arp-rc-routing' });
