/**
 * buildApp(deps): the whole HTTP service as a Fastify instance, built from injected dependencies.
 * It reads no environment and does not listen; src/server.ts does that.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TracerProvider } from '@opentelemetry/api';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { authorizeAssignment, installAuth } from './auth/hooks.js';
import { type AuthSettings, disabledAuth } from './auth/settings.js';
import { JwtVerifier } from './auth/verifier.js';
import type { CallRecord } from './clients/http.js';
import { type Contract, loadContract, schemaId } from './contract/contract.js';
import type { BackgroundErrorHandler, BackgroundIds, Coordinator } from './coordinator/coordinator.js';
import { systemClock } from './coordinator/ports.js';
import {
  buildCoordinator,
  defaultOrchestration,
  type OrchestrationOptions,
  type WiringDeps,
} from './coordinator/wiring.js';
import { MAX_CLIENT_ID_LENGTH } from './core/ids.js';
import { ArpError } from './errors.js';
import { EventStreams } from './events/streams.js';
import type { VersionInfo } from './gen/contract.js';
import { HealthMonitor } from './health/health.js';
import { installProbes, PROBE_ROUTES, type Probes } from './health/probes.js';
import { clientErrorHandler, connectionOptions, keepConnectionForAnswer } from './http/connections.js';
import { envelope, toWireError } from './http/envelope.js';
import { installJsonBodyParser } from './http/json-body.js';
import { StreamRegistry } from './http/ndjson.js';
import { pathMatcher, toFastifyPath } from './http/route-match.js';
import { Metrics } from './metrics/metrics.js';
import { installMetrics, METRICS_PATH } from './metrics/plugin.js';
import { type HandlerContext, handlers, type OperationId } from './routes/handlers.js';
import { MemoryStore } from './store/memory.js';
import { openPostgresStore } from './store/postgres/open.js';
import { type DatabaseSettings, redactUrl } from './store/postgres/settings.js';
import type { Store } from './store/store.js';
import { installServerSpans, Tracing, tracedStore } from './tracing/tracing.js';

export interface AppOptions {
  /** Largest accepted request body, in bytes. */
  readonly bodyLimit: number;
  /** Finished Runs kept by the default memory store. */
  readonly maxFinishedRuns: number;
  /** Unfinished Runs at most; beyond it a new Run is a retryable 503. */
  readonly maxLiveRuns: number;
  /** Wall-time budget of a Run that sets none (none when absent). */
  readonly defaultMaxWallTimeMs?: number;
  /** Open follow streams (`follow=true`) in the process; beyond it a retryable 503. */
  readonly maxFollowStreams: number;
  /** Open follow streams on one Run; beyond it a retryable 503. */
  readonly maxFollowStreamsPerRun: number;
  /** One info line per request (method, path, status, time). Off by default: it costs throughput. */
  readonly logRequests: boolean;
  /** Commit the service was built from, reported by /v1/version. */
  readonly buildCommit?: string;
  /** Executors, registry, PDP and selection; none configured = pure state authority. */
  readonly orchestration: OrchestrationOptions;
  /** Inbound JWT authentication and outbound client credentials (ARP_AUTH_*). */
  readonly auth: AuthSettings;
  /** Time to receive a whole request, headers and body; slower requests get 408. */
  readonly requestTimeoutMs: number;
  /** Idle time after which a kept-alive connection is closed. */
  readonly keepAliveTimeoutMs: number;
  /** Concurrent connections; further ones are closed as soon as they are accepted. */
  readonly maxConnections: number;
  /** PostgreSQL instead of memory (RC_DATABASE_URL and friends); absent = the memory store. */
  readonly database?: DatabaseSettings;
  /** Prometheus metrics at GET /metrics (RC_METRICS; on unless false); off = no hook at all. */
  readonly metrics?: boolean;
  /** Serve /metrics only on this port (RC_METRICS_PORT); absent = on the main port. */
  readonly metricsPort?: number;
}

export const defaultAppOptions: AppOptions = {
  bodyLimit: 1024 * 1024,
  maxFinishedRuns: 10_000,
  maxLiveRuns: 100_000,
  maxFollowStreams: 10_000,
  maxFollowStreamsPerRun: 1_000,
  logRequests: false,
  orchestration: defaultOrchestration,
  auth: disabledAuth,
  requestTimeoutMs: 30_000,
  // Longer than the 60 s idle timeout of common load balancers, so they close first (Fastify's default).
  keepAliveTimeoutMs: 72_000,
  maxConnections: 10_000,
};

export interface AppDeps extends WiringDeps {
  /** Replaces the JWT verifier built from the auth settings (tests). */
  readonly verifier?: JwtVerifier;
  readonly onBackgroundError?: BackgroundErrorHandler;
  readonly options?: Partial<AppOptions>;
  /** pino logger; omitted or false = no logging. */
  readonly logger?: Logger | false;
  readonly store?: Store;
  readonly contract?: Contract;
  /** Called for every response that does not match the contract (tests set it to fail loudly). */
  readonly onContractViolation?: (violation: ContractViolation) => void;
  /** OpenTelemetry spans go to this provider; absent = no tracing at all (see src/tracing). */
  readonly tracerProvider?: TracerProvider;
}

export interface ContractViolation {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly problem: string;
}

/** This package's name and version (user-agent, /v1/version, spans). */
export const PACKAGE = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  name: string;
  version: string;
};

function requestIdGenerator() {
  const prefix = randomBytes(3).toString('hex');
  let counter = 0;
  return (request: { headers: Record<string, string | string[] | undefined> }) => {
    const given = request.headers['x-request-id'];
    if (typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given)) return given;
    counter += 1;
    return `${prefix}-${counter.toString(36)}`;
  };
}

export async function buildApp(deps: AppDeps = {}): Promise<FastifyInstance> {
  const options = { ...defaultAppOptions, ...deps.options };
  const contract = deps.contract ?? loadContract();
  const logger = deps.logger || undefined;
  const onBackgroundError =
    deps.onBackgroundError ??
    ((error: unknown, context: string, ids?: BackgroundIds) =>
      logger?.warn({ err: error, context, ...ids }, 'background work failed'));
  const database = options.database;
  const tracing = deps.tracerProvider ? new Tracing(deps.tracerProvider, PACKAGE.version) : undefined;
  const now = () => (deps.clock ?? systemClock).now().getTime();
  const store =
    deps.store ??
    (database
      ? await openPostgresStore(database, {
          now,
          dispatching: Boolean(
            options.orchestration.services.atomicExecutor || options.orchestration.services.compositeExecutor,
          ),
          onError: onBackgroundError,
        })
      : new MemoryStore({
          maxFinishedRuns: options.maxFinishedRuns,
          onListenerError: (error) => logger?.error({ err: error }, 'event listener failed'),
          onEvicted: (runId, nodeRunId) =>
            logger?.warn({ runId, nodeRunId, event: 'run_evicted' }, 'finished run evicted from memory'),
        }));
  // Observers of outgoing calls (metrics, health, logs) register on `app.serviceCalls`.
  const callObservers: ((record: CallRecord) => void)[] = deps.onServiceCall ? [deps.onServiceCall] : [];
  // Prometheus metrics, per app: fed by commits, outgoing calls and token requests.
  const metrics = options.metrics !== false ? new Metrics() : undefined;
  if (metrics) callObservers.push(metrics.serviceCall);
  const wired = buildCoordinator(
    tracing ? tracedStore(store, tracing) : store,
    contract,
    options.orchestration,
    {
      userAgent: `${PACKAGE.name}/${PACKAGE.version}`,
      ...(tracing ? { tracing } : {}),
      ...(options.auth.outbound ? { outboundAuth: options.auth.outbound } : {}),
      ...(database
        ? {
            recovery: {
              intervalMs: database.reconcileIntervalMs,
              leaseTtlMs: database.leaseTtlMs,
              retentionMs: database.retentionMs,
            },
          }
        : {}),
      limits: {
        maxLiveRuns: options.maxLiveRuns,
        ...(options.defaultMaxWallTimeMs !== undefined
          ? { defaultMaxWallTimeMs: options.defaultMaxWallTimeMs }
          : {}),
      },
      onEvent: (event) => {
        const { type, ...fields } = event;
        logger?.warn({ ...fields, event: type }, EVENT_MESSAGES[type]);
      },
      ...deps,
      ...(metrics ? { onCommitted: metrics.committed, onTokenCall: metrics.tokenCall } : {}),
      onServiceCall: (record) => {
        for (const observe of callObservers) observe(record);
      },
    },
    onBackgroundError,
  );
  const { coordinator } = wired;
  const clock = () => (deps.clock ?? systemClock).now();
  const health = new HealthMonitor(store, options.orchestration.services, clock);
  callObservers.push(health.observe);
  const probes: Probes = { ready: false, closing: false };
  const streams = new StreamRegistry((error, reqId) =>
    logger?.error({ reqId, err: error }, 'event stream failed'),
  );
  const events = new EventStreams(store, options);
  const matcher = pathMatcher(contract.operations);

  const app = Fastify({
    // The service logs through `logger` itself, binding `reqId` where it logs. Fastify's own
    // per-request child loggers cost several percent of throughput on fast routes and are unused.
    logger: false,
    bodyLimit: options.bodyLimit,
    // Fastify's own 503 while closing is not an ErrorEnvelope; the onRequest hook answers instead.
    return503OnClosing: false,
    // HEAD is not in the contract; it gets 405 like any other method the contract does not define.
    exposeHeadRoutes: false,
    genReqId: requestIdGenerator(),
    ...connectionOptions(options),
    clientErrorHandler,
    // Every id the service accepts fits (the router measures decoded segments); longer segments
    // cannot name anything (414).
    routerOptions: { maxParamLength: MAX_CLIENT_ID_LENGTH },
    // Errors the router raises before any route or hook runs (bad percent-encoding, long segments).
    frameworkErrors: (error, request, reply) => {
      const wire = toWireError(error);
      (reply as FastifyReply).header('x-request-id', request.id).code(wire.status).send(wire.body);
    },
    ajv: {
      // Reject rather than repair: unknown fields and wrong types are 400s, as the contract says.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true },
    },
  });

  // Node closes connections beyond the cap as soon as it accepts them.
  app.server.maxConnections = options.maxConnections;

  const routeMissError = (request: FastifyRequest): ArpError => {
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
  const routeMiss = (request: FastifyRequest): never => {
    throw routeMissError(request);
  };

  installJsonBodyParser(app);

  for (const schema of contract.schemas) app.addSchema(schema);

  app.setErrorHandler((error, request, reply) => {
    const wire = toWireError(error);
    if (wire.status >= 500) logger?.error({ reqId: request.id, err: error }, 'request failed');
    else logger?.debug({ reqId: request.id, err: error, code: wire.body.error.code }, 'request rejected');
    keepConnectionForAnswer(request, reply);
    reply
      .code(wire.status)
      .headers(wire.headers ?? {})
      .send(wire.body);
  });
  app.setNotFoundHandler((request) => routeMiss(request));

  let closing = false;
  // A callback hook: cheaper per request than an async one.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // Probes answer for themselves while closing: /readyz its own 503, /livez 200.
    if (!closing || PROBE_ROUTES.has(request.url.split('?')[0] ?? '')) return done();
    // Shutting down: a request on a kept-alive connection gets a retryable 503 and the connection ends.
    reply
      .code(503)
      .header('connection', 'close')
      .send(envelope('service_unavailable', 'The service is shutting down', undefined, true));
  });
  if (tracing) installServerSpans(app, tracing);
  const verifier =
    options.auth.inbound.mode === 'disabled'
      ? undefined
      : (deps.verifier ?? new JwtVerifier(options.auth.inbound));
  installAuth(app, {
    // The probes carry nothing and orchestrators call them without credentials.
    settings: {
      ...options.auth.inbound,
      exemptPaths: [...options.auth.inbound.exemptPaths, ...PROBE_ROUTES],
    },
    verifier,
    assignments: store,
    onRejected: (request, failure) =>
      logger?.info(
        { reqId: request.id, url: request.url, reason: failure.message },
        'request not authenticated',
      ),
  });
  // No route takes this request: answer 404/405 before reading a body (whose media type, syntax or
  // size would otherwise decide the status). After authentication, so unknown routes still say 401.
  app.addHook('onRequest', (request, _reply, done) =>
    done(request.is404 ? routeMissError(request) : undefined),
  );
  if (options.logRequests) {
    app.addHook('onResponse', async (request, reply) => {
      logger?.info(
        {
          reqId: request.id,
          sub: request.principal?.sub,
          method: request.method,
          url: request.url,
          status: reply.statusCode,
          ms: reply.elapsedTime,
        },
        'request',
      );
    });
  }
  if (metrics) {
    installMetrics(app, {
      metrics,
      ...(options.metricsPort !== undefined ? { port: options.metricsPort } : {}),
      auth: options.auth.inbound,
      verifier,
      coordinator,
      events,
    });
  }
  if (deps.onContractViolation) installContractCheck(app, contract, deps.onContractViolation);

  await app.register(swagger, { mode: 'static', specification: { document: contract.document as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const documentJson = JSON.stringify(contract.document);
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('application/json; charset=utf-8').send(documentJson),
  );

  const version: VersionInfo = {
    service_name: PACKAGE.name,
    service_version: PACKAGE.version,
    supported_api_versions: ['v1'],
    ...(options.buildCommit ? { build: { commit: options.buildCommit } } : {}),
  };
  const ctx: HandlerContext = {
    coordinator,
    streams,
    events,
    version,
    clock: () => (deps.clock ?? { now: () => new Date() }).now(),
    routeMiss,
    health: () => health.report(),
  };
  installProbes(app, probes);
  for (const operation of contract.operations) {
    const handler = handlers[operation.operationId as OperationId];
    if (!handler) throw new Error(`no handler for operation ${operation.operationId}`);
    const handle = (request: FastifyRequest, reply: FastifyReply) => {
      const principal = request.principal;
      if (principal?.kind !== 'assignment') return handler(request, reply, ctx);
      return authorizeAssignment(request, principal.assignment, store).then(() =>
        handler(request, reply, ctx),
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
      // With tracing, the request's span is the parent of every span the handler starts.
      handler: tracing
        ? (request, reply) => {
            const span = request.otelSpan;
            return span ? tracing.within(span, () => handle(request, reply)) : handle(request, reply);
          }
        : handle,
    });
  }

  // With a shared store: finish what stopped processes left (first pass before serving), then on schedule.
  app.addHook('onReady', async () => {
    await coordinator.start();
    probes.ready = true;
  });
  app.addHook('preClose', () => {
    closing = true;
    probes.closing = true;
    coordinator.stop();
    return streams.endAll();
  });
  app.addHook('onClose', async () => {
    await coordinator.close();
    await store.close();
  });
  app.decorate('coordinator', coordinator);
  app.decorate('eventStreams', events);
  app.decorate('serviceCalls', {
    observe: (observer: (record: CallRecord) => void) => {
      callObservers.push(observer);
    },
  });
  app.decorate('verifier', verifier);
  app.decorate(
    'storeDescription',
    deps.store
      ? 'injected store'
      : database
        ? `PostgreSQL ${redactUrl(database.url)}, schema ${database.schema}, instance ${database.instanceId}`
        : 'in-memory store',
  );
  app.decorate('orchestration', {
    dispatching: wired.dispatching,
    policy: wired.policy,
    services: Object.keys(options.orchestration.services).filter(
      (name) => options.orchestration.services[name as keyof typeof options.orchestration.services],
    ),
  });
  return app;
}

declare module 'fastify' {
  interface FastifyInstance {
    coordinator: Coordinator;
    /** Open event streams and their shared per-Run feeds (diagnostics). */
    eventStreams: EventStreams;
    /** Outgoing calls to the executors, registry, PDP and selection, as they end. */
    serviceCalls: { observe(observer: (record: CallRecord) => void): void };
    /** Which store holds the Runs, for the startup log (never with a password). */
    storeDescription: string;
    /** The JWT verifier when inbound authentication is on. */
    verifier: JwtVerifier | undefined;
    /** How the coordinator runs work, for the startup log. */
    orchestration: { dispatching: boolean; policy: 'pdp' | 'local' | 'none'; services: string[] };
  }
  interface FastifyContextConfig {
    operationId?: string;
  }
}

const EVENT_MESSAGES = {
  dispatch_failed: 'dispatch failed',
  policy_denied: 'policy denied',
  executor_timeout: 'executor timed out',
  execution_owner_lost: 'execution lost with its owning instance',
} as const;

function installContractCheck(
  app: FastifyInstance,
  contract: Contract,
  report: (violation: ContractViolation) => void,
): void {
  // Imported lazily so that production never compiles the response validators.
  let validators: import('./contract/validators.js').ContractValidators | undefined;
  const operations = new Map(contract.operations.map((op) => [op.operationId, op]));
  app.addHook('onSend', async (request, reply, payload) => {
    validators ??= new (await import('./contract/validators.js')).ContractValidators(contract);
    const status = reply.statusCode;
    const fail = (problem: string) => report({ method: request.method, url: request.url, status, problem });
    const operation = operations.get(request.routeOptions.config.operationId ?? '');
    const path = request.url.split('?')[0] ?? '';
    if (
      request.url.startsWith('/docs') ||
      path === '/openapi.json' ||
      path === METRICS_PATH ||
      PROBE_ROUTES.has(path)
    ) {
      return payload;
    }
    let schema: string | undefined;
    if (status >= 400) schema = 'ErrorEnvelope';
    else if (operation && status === operation.success.status) {
      if (operation.success.body === undefined) {
        if (payload !== undefined && payload !== '' && payload !== null) fail('a 204 response has a body');
        return payload;
      }
      schema = operation.success.body === 'ndjson' ? undefined : operation.success.body;
    } else fail(`status ${status} is not in the contract for ${operation?.operationId ?? 'this route'}`);
    if (schema === undefined) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('application/json')) fail(`content-type is '${type}'`);
    let body: unknown;
    try {
      body = JSON.parse(String(payload));
    } catch {
      fail('body is not JSON');
      return payload;
    }
    const errors = validators.validate(schema, body);
    if (errors.length > 0) fail(`${schema}: ${JSON.stringify(errors)} in ${String(payload)}`);
    return payload;
  });
}
