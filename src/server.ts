/**
 * Process entry: configuration from the environment, buildApp, listen, and a graceful shutdown on
 * SIGTERM/SIGINT (stop accepting, end open event streams, finish in-flight requests, exit 0).
 */
import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { buildApp, PACKAGE } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { tracerProviderFromEnv } from './tracing/otlp.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env, process.argv.slice(2));
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const logger = pino({ level: config.logLevel, base: { service: 'arp-run-coordinator' } });
  let exporting: Awaited<ReturnType<typeof tracerProviderFromEnv>>;
  try {
    exporting = await tracerProviderFromEnv(process.env, PACKAGE.version);
  } catch (error) {
    process.stderr.write(`invalid configuration:\n  ${(error as Error).message}\n`);
    process.exit(1);
  }
  const app = await buildApp({
    logger,
    options: config.app,
    ...(exporting ? { tracerProvider: exporting.provider } : {}),
  });

  // SIGTERM/SIGINT (and the other termination signals), an uncaught error or an unhandled rejection:
  // close gracefully within the shutdown timeout; a second signal exits at once.
  closeWithGrace(
    {
      delay: config.shutdownTimeoutMs,
      logger,
      // The timeout is part of the design, not a failure: what is still executing is left to the
      // reconciler's lease rule (PostgreSQL) or was already told to stop.
      onTimeout: () => {
        logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
        process.exit(0);
      },
    },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'uncaught error; shutting down');
      else logger.info({ signal }, 'shutting down');
      await app.close();
      // Spans still buffered are sent before the process ends.
      await exporting?.provider.shutdown();
    },
  );

  const address = await app.listen({ host: config.host, port: config.port });
  logger.info(`Server listening at ${address}`);
  const metricsServer = app.metrics?.server;
  if (metricsServer) {
    const metricsAddress = await metricsServer.listen({
      host: config.host,
      port: config.app.metricsPort ?? 0,
    });
    logger.info(`Metrics at ${metricsAddress}/metrics`);
  }
  const { orchestration } = app;
  const { policyDefault } = config.app.orchestration;
  logger.info(
    {
      maxFinishedRuns: config.app.maxFinishedRuns,
      bodyLimit: config.app.bodyLimit,
      requestTimeoutMs: config.app.requestTimeoutMs,
      keepAliveTimeoutMs: config.app.keepAliveTimeoutMs,
      maxConnections: config.app.maxConnections,
      logRequests: config.app.logRequests,
      services: orchestration.services,
    },
    orchestration.dispatching
      ? `run coordinator ready: ${app.storeDescription}; dispatching NodeRuns to executors`
      : `run coordinator ready: ${app.storeDescription}; no executors configured, so NodeRuns wait for external workers`,
  );
  if (orchestration.policy === 'local') {
    const level = policyDefault === 'allow' ? 'warn' : 'info';
    logger[level](
      `no PDP configured: every policy checkpoint answers '${policyDefault}' (RC_POLICY_DEFAULT=${policyDefault})`,
    );
  }
  const { inbound, outbound, ignored } = config.app.auth;
  if (inbound.mode === 'disabled') {
    logger.warn(
      'inbound authentication is disabled: every caller is trusted (set ARP_AUTH_MODE or ARP_AUTH_PROFILE)',
    );
  } else {
    logger.info(
      {
        mode: inbound.mode,
        profile: inbound.profile,
        issuer: inbound.issuer,
        audience: inbound.audience,
        keys: inbound.jwksUri ?? inbound.discoveryUrl,
        algorithms: inbound.algorithms,
        exemptPaths: inbound.exemptPaths,
      },
      `inbound authentication: ${inbound.mode}`,
    );
    app.verifier
      ?.warmUp()
      .catch((error: unknown) =>
        logger.error(
          { err: error },
          'could not load the signing keys yet; they are fetched again for the next token',
        ),
      );
  }
  if (ignored.length > 0) {
    logger.warn(
      { ignored },
      'ARP_AUTH_* settings ignored: authentication is off without ARP_AUTH_MODE or ARP_AUTH_PROFILE',
    );
  }
  logger.info(
    exporting
      ? `traces: exported (${exporting.description})`
      : 'traces: not exported (no OTEL_* exporter set)',
  );
  logger.info(
    outbound ? { tokenEndpoint: outbound.tokenEndpoint, clientId: outbound.clientId } : {},
    outbound ? 'outgoing calls carry client-credentials tokens' : 'outgoing calls carry no token',
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
