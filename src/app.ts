/**
 * buildApp(deps): the whole HTTP service as a Fastify instance, built from injected dependencies.
 * It reads no environment and does not listen; src/server.ts does that.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TracerProvider } from '@opentelemetry/api';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { type AuthSettings, disabledAuth } from './auth/settings.js';
import { JwtVerifier } from './auth/verifier.js';
import type { CallRecord } from './clients/http.js';
import { type Contract, loadContract } from './contract/contract.js';
import { loadListing } from './contract/listing.js';
import type { BackgroundErrorHandler, BackgroundIds, Coordinator } from './coordinator/coordinator.js';
import { systemClock } from './coordinator/ports.js';
import {
  buildCoordinator,
  defaultOrchestration,
  type OrchestrationOptions,
  type WiringDeps,
} from './coordinator/wiring.js';
import { MAX_CLIENT_ID_LENGTH } from './core/ids.js';
import { EventStreams } from './events/streams.js';
import type { VersionInfo } from './gen/contract.js';
import { HealthMonitor } from './health/health.js';
import { clientErrorHandler, connectionOptions } from './http/connections.js';
import { toWireError } from './http/envelope.js';
import { StreamRegistry } from './http/ndjson.js';
import { pathMatcher } from './http/route-match.js';
import { Metrics } from './metrics/metrics.js';
import authPlugin from './plugins/auth.js';
import contractPlugin from './plugins/contract.js';
import docsPlugin from './plugins/docs.js';
import errorsPlugin from './plugins/errors.js';
import lifecyclePlugin from './plugins/lifecycle.js';
import metricsPlugin from './plugins/metrics.js';
import requestLogPlugin from './plugins/request-log.js';
import routesPlugin from './plugins/routes.js';
import routingPlugin, { routeMissError } from './plugins/routing.js';
import tracingPlugin from './plugins/tracing.js';
import type { HandlerContext } from './routes/handlers.js';
import { MemoryStore } from './store/memory.js';
import { openPostgresStore } from './store/postgres/open.js';
import { type DatabaseSettings, redactUrl } from './store/postgres/settings.js';
import type { Store } from './store/store.js';
import { Tracing, tracedStore } from './tracing/tracing.js';

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

import type { ContractViolation } from './plugins/contract.js';

export type { ContractViolation };

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
  const streams = new StreamRegistry((error, reqId) =>
    logger?.error({ reqId, err: error }, 'event stream failed'),
  );
  const events = new EventStreams(store, options);
  const listing = loadListing(contract);
  const matcher = pathMatcher([...contract.operations, ...listing.operations]);

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

  // One plugin per concern (src/plugins), registered in the order their hooks must run: the
  // request id and shutdown first, then the request's span, authentication, and routing.
  const routeMiss = routeMissError(matcher);
  const verifier =
    options.auth.inbound.mode === 'disabled'
      ? undefined
      : (deps.verifier ?? new JwtVerifier(options.auth.inbound));
  await app.register(lifecyclePlugin, { coordinator, store, streams });
  await app.register(contractPlugin, { contract, listing, onViolation: deps.onContractViolation });
  await app.register(errorsPlugin, { logger });
  if (tracing) await app.register(tracingPlugin, { tracing });
  await app.register(authPlugin, { settings: options.auth.inbound, verifier, assignments: store, logger });
  await app.register(routingPlugin, { routeMissError: routeMiss });
  if (options.logRequests && logger) await app.register(requestLogPlugin, { logger });
  if (metrics) {
    await app.register(metricsPlugin, {
      metrics,
      ...(options.metricsPort !== undefined ? { port: options.metricsPort } : {}),
      auth: options.auth.inbound,
      verifier,
      coordinator,
      events,
      streams,
    });
  }
  await app.register(docsPlugin, { contract, listing });
  const version: VersionInfo = {
    service_name: PACKAGE.name,
    service_version: PACKAGE.version,
    supported_api_versions: ['v1'],
    ...(options.buildCommit ? { build: { commit: options.buildCommit } } : {}),
  };
  const context: HandlerContext = {
    coordinator,
    streams,
    events,
    version,
    clock: () => (deps.clock ?? { now: () => new Date() }).now(),
    routeMiss: (request) => {
      throw routeMiss(request);
    },
    health: () => health.report(),
  };
  await app.register(routesPlugin, { contract, listing, context, assignments: store, tracing });

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
