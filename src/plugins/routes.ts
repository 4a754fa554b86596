/**
 * The ARP operations, one route per operationId of the contract, each delegating to its handler
 * (src/routes/handlers.ts), and the listing API's beside them (src/routes/listing.ts); an assignment
 * token's scope is checked once its body is validated.
 * With tracing, the request's span is the parent of every span the handler starts.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type AssignmentLookup, authorizeAssignment } from '../auth/hooks.js';
import { type Contract, schemaId } from '../contract/contract.js';
import { toFastifyPath } from '../http/route-match.js';
import { type Handler, type HandlerContext, handlers } from '../routes/handlers.js';
import { type ListingOperationId, listingHandlers } from '../routes/listing.js';
import type { Tracing } from '../tracing/tracing.js';

export interface RoutesOptions {
  readonly contract: Contract;
  /** The listing API's document (src/contract/listing.ts). */
  readonly listing: Contract;
  readonly context: HandlerContext;
  readonly assignments: AssignmentLookup;
  readonly tracing: Tracing | undefined;
}

async function routes(
  app: FastifyInstance,
  { contract, listing, context, assignments, tracing }: RoutesOptions,
) {
  const listingContext = { store: context.coordinator.store };
  const table = new Map<string, Handler>([
    ...Object.entries(handlers),
    ...Object.entries(listingHandlers).map(
      ([id, handler]) =>
        [id, (request, reply) => handler(request, reply, listingContext)] as [ListingOperationId, Handler],
    ),
  ]);
  for (const operation of [...contract.operations, ...listing.operations]) {
    const handler = table.get(operation.operationId);
    if (!handler) throw new Error(`no handler for operation ${operation.operationId}`);
    const handle = (request: FastifyRequest, reply: FastifyReply) => {
      const principal = request.principal;
      if (principal?.kind !== 'assignment') return handler(request, reply, context);
      return authorizeAssignment(request, principal.assignment, assignments).then(() =>
        handler(request, reply, context),
      );
    };
    app.route({
      method: operation.method,
      url: toFastifyPath(operation.path),
      config: { operationId: operation.operationId },
      schema: {
        ...(operation.requestBody ? { body: { $ref: `${schemaId(operation.requestBody)}#` } } : {}),
        // Path parameters are plain strings; the handlers check their shape (no per-request Ajv call).
      },
      handler: tracing
        ? (request, reply) => {
            const span = request.otelSpan;
            return span ? tracing.within(span, () => handle(request, reply)) : handle(request, reply);
          }
        : handle,
    });
  }
}

export default fp(routes, { name: 'arp-rc-routes' });
