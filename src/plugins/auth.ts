/**
 * Inbound authentication (ARP_AUTH_*): JWTs and assignment tokens on every route but the exempt
 * ones; the probes are always exempt (they carry nothing and orchestrators call them without
 * credentials), and so are routes marked `authExempt` (the Run inspector's static files).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Logger } from 'pino';
import { type AssignmentLookup, installAuth } from '../auth/hooks.js';
import type { InboundAuth } from '../auth/settings.js';
import type { JwtVerifier } from '../auth/verifier.js';
import { PROBE_ROUTES } from '../health/probes.js';

export interface AuthOptions {
  readonly settings: InboundAuth;
  readonly verifier: JwtVerifier | undefined;
  readonly assignments: AssignmentLookup;
  readonly logger: Logger | undefined;
}

async function auth(app: FastifyInstance, { settings, verifier, assignments, logger }: AuthOptions) {
  installAuth(app, {
    settings: { ...settings, exemptPaths: [...settings.exemptPaths, ...PROBE_ROUTES] },
    verifier,
    assignments,
    onRejected: (request, failure) =>
      logger?.info(
        { reqId: request.id, url: request.url, reason: failure.message },
        'request not authenticated',
      ),
  });
}

export default fp(auth, { name: 'arp-rc-auth' });
