/**
 * Inbound authentication and the authorisation of assignment tokens, as Fastify hooks.
 *
 * onRequest (before routing and body parsing, so unknown routes answer 401 too): exempt paths pass;
 * `disabled` sets the dev principal; a missing or malformed header is 401 in `required` mode and the
 * anonymous principal in `optional` mode; an assignment token or a verified JWT sets the principal.
 * authorizeAssignment (called by the route handler, after validation, so the body is known): an
 * assignment principal may only make the callbacks of a composite executor on its NodeRun's
 * subtree, and list that subtree; anything else is 403.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isTerminal } from '../core/model.js';
import { ArpError } from '../errors.js';
import type { Store } from '../store/store.js';
import { type Assignment, hashToken, isAssignmentToken } from './assignments.js';
import type { InboundAuth } from './settings.js';
import { AuthFailure, type JwtVerifier } from './verifier.js';

export type Principal =
  | { readonly kind: 'user'; readonly sub: string; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly kind: 'anonymous' | 'dev'; readonly sub: string }
  | { readonly kind: 'assignment'; readonly sub: string; readonly assignment: Assignment };

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling; undefined on exempt paths. */
    principal?: Principal;
  }
}

const ALWAYS_PUBLIC = new Set(['/v1/health', '/v1/version']);

/** 401 with the reference services' body and `WWW-Authenticate` strings. */
export function unauthorized(failure: AuthFailure): ArpError {
  const description = failure.message.replaceAll('"', '\\"');
  return new ArpError('unauthorized', failure.message, {
    headers: { 'www-authenticate': `Bearer error="${failure.error}", error_description="${description}"` },
  });
}

/** What authentication reads of the store: assignment tokens, and the NodeRun tree they scope. */
export type AssignmentLookup = Pick<Store, 'findAssignment' | 'getNodeRun'>;

export interface AuthHooksOptions {
  readonly settings: InboundAuth;
  readonly verifier: JwtVerifier | undefined;
  /** Where assignment tokens (by hash) and the NodeRuns they are bound to are looked up. */
  readonly assignments: AssignmentLookup;
  readonly onRejected?: (request: FastifyRequest, failure: AuthFailure) => void;
}

export function installAuth(app: FastifyInstance, options: AuthHooksOptions): void {
  const { settings, verifier, assignments } = options;
  const exempt = new Set([...settings.exemptPaths, ...ALWAYS_PUBLIC]);
  app.decorateRequest('principal', undefined);

  if (settings.mode === 'disabled') {
    const dev: Principal = { kind: 'dev', sub: settings.devSubject };
    app.addHook('onRequest', (request, _reply, done) => {
      request.principal = dev;
      done();
    });
    return;
  }
  const anonymous: Principal = { kind: 'anonymous', sub: settings.anonymousSubject };
  const reject = (request: FastifyRequest, failure: AuthFailure) => {
    options.onRejected?.(request, failure);
    return unauthorized(failure);
  };

  app.addHook('onRequest', (request, _reply, done) => {
    const query = request.url.indexOf('?');
    if (exempt.has(query < 0 ? request.url : request.url.slice(0, query))) return done();
    const header = request.headers.authorization;
    if (header === undefined) {
      if (settings.mode === 'optional') {
        request.principal = anonymous;
        return done();
      }
      return done(reject(request, new AuthFailure('invalid_request', 'Missing Authorization header')));
    }
    const token = bearerToken(header);
    if (token === undefined) {
      return done(reject(request, new AuthFailure('invalid_request', 'Invalid Authorization header')));
    }
    if (isAssignmentToken(token)) {
      assignments.findAssignment(hashToken(token)).then((assignment) => {
        if (!assignment) return done(reject(request, new AuthFailure('invalid_token', 'Invalid token')));
        // Composite executors call NodeRun operations (and may list their subtree); the exact scope
        // is checked by authorizeAssignment once the route and body are known.
        if (!request.url.startsWith('/v1/node-runs') && !request.url.startsWith('/rc/v1/'))
          return done(forbidden(scopeMessage(assignment)));
        request.principal = { kind: 'assignment', sub: `assignment:${assignment.nodeRunId}`, assignment };
        done();
      }, done);
      return;
    }
    const cached = verifier?.cached(token);
    if (cached) {
      request.principal = cached.principal;
      return done();
    }
    if (!verifier) return done(reject(request, new AuthFailure('invalid_token', 'Invalid token')));
    verifier.verify(token).then(
      (verified) => {
        request.principal = verified.principal;
        done();
      },
      (error: unknown) =>
        done(
          reject(
            request,
            error instanceof AuthFailure ? error : new AuthFailure('invalid_token', 'Invalid token'),
          ),
        ),
    );
  });
}

/**
 * The token of `Bearer <token>`: exactly two parts separated by whitespace, the scheme matched
 * case-insensitively, as the reference services parse it. Undefined when malformed.
 */
export function bearerToken(header: string): string | undefined {
  // The common, well-formed case without a regular expression over the whole token.
  if (
    header.startsWith('Bearer ') &&
    header.length > 7 &&
    header.indexOf(' ', 7) === -1 &&
    header.indexOf('\t') === -1 &&
    header.charCodeAt(7) > 32
  ) {
    return header.slice(7);
  }
  const value = header.trim();
  const gap = value.search(/\s/);
  if (gap < 0 || value.slice(0, gap).toLowerCase() !== 'bearer') return undefined;
  const token = value.slice(gap).trimStart();
  if (token === '' || /\s/.test(token)) return undefined;
  return token;
}

const forbidden = (message: string) => new ArpError('forbidden', message);
const scopeMessage = (assignment: Assignment) =>
  `The assignment token only allows callbacks on NodeRun '${assignment.nodeRunId}' and its descendants`;

/**
 * The operations a composite executor makes, on its own NodeRun's subtree; nothing else. Called by
 * the route handler for assignment principals, after the body was parsed and validated.
 */
export async function authorizeAssignment(
  request: FastifyRequest,
  assignment: Assignment,
  store: AssignmentLookup,
) {
  const own = await store.getNodeRun(assignment.nodeRunId);
  if (!own || isTerminal(own.nodeRun.state)) {
    throw unauthorized(new AuthFailure('invalid_token', 'Assignment token is no longer valid'));
  }
  const scope = scopeMessage(assignment);
  const params = request.params as Record<string, string | undefined>;
  let target: string | undefined;
  switch (request.routeOptions.config.operationId) {
    case 'create_node_runs': {
      const body = request.body as { run_id: string; parent_node_run_id: string };
      if (body.run_id !== assignment.runId) throw forbidden(scope);
      target = body.parent_node_run_id;
      break;
    }
    case 'list_node_runs':
      // Listed through its own subtree only (the handler narrows the listing to it).
      if (params.run_id !== assignment.runId) throw forbidden(scope);
      return;
    case 'get_node_run':
    case 'stream_node_run_events':
    case 'report_node_run_evaluation':
    case 'complete_node_run':
      target = params.node_run_id;
      break;
    default:
      throw forbidden(scope);
  }
  // Walk up from the target: it must be the assigned NodeRun or one of its descendants.
  for (let id = target; id !== undefined; ) {
    if (id === assignment.nodeRunId) return;
    const record = await store.getNodeRun(id);
    if (!record || record.nodeRun.run_id !== assignment.runId) break;
    id = record.nodeRun.parent_node_run_id;
  }
  throw forbidden(scope);
}
