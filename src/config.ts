/**
 * The one place that reads configuration: environment variables (and `--host` / `--port` on the
 * command line), validated once at startup into a frozen Config. Every problem is reported at once.
 */
import type { AppOptions } from './app.js';
import { parseAuthSettings } from './auth/settings.js';
import { normalizeBaseUrl } from './clients/http.js';
import type { OrchestrationOptions, ServiceUrls } from './coordinator/wiring.js';
import { parseDatabaseSettings } from './store/postgres/settings.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  /** How long shutdown waits for in-flight requests before exiting anyway. */
  readonly shutdownTimeoutMs: number;
  readonly app: AppOptions;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Every variable the service reads, with its default, for docs and `.env.example`. */
export const ENV_DEFAULTS = {
  RC_HOST: '127.0.0.1',
  RC_PORT: '8081',
  LOG_LEVEL: 'info',
  RC_LOG_REQUESTS: 'false',
  RC_BODY_LIMIT_BYTES: String(1024 * 1024),
  RC_MAX_FINISHED_RUNS: '10000',
  RC_MAX_LIVE_RUNS: '100000',
  RC_DEFAULT_MAX_WALL_TIME_MS: '',
  RC_SHUTDOWN_TIMEOUT_MS: '10000',
  RC_REQUEST_TIMEOUT_MS: '30000',
  RC_KEEP_ALIVE_TIMEOUT_MS: '72000',
  RC_MAX_CONNECTIONS: '10000',
  RC_MAX_FOLLOW_STREAMS: '10000',
  RC_MAX_FOLLOW_STREAMS_PER_RUN: '1000',
  RC_BUILD_COMMIT: '',
  RC_METRICS: 'true',
  RC_METRICS_PORT: '',
  RC_ATOMIC_EXECUTOR_URL: '',
  RC_COMPOSITE_EXECUTOR_URL: '',
  RC_NODE_REGISTRY_URL: '',
  RC_PDP_URL: '',
  RC_SELECTION_URL: '',
  RC_PUBLIC_URL: '',
  RC_POLICY_DEFAULT: 'allow',
  RC_EXECUTE_TIMEOUT_MS: '300000',
  RC_CALL_TIMEOUT_MS: '10000',
  RC_COMPOSITE_TIMEOUT_MS: '3600000',
  RC_DISPATCH_CONCURRENCY: '32',
  RC_REGISTRY_CACHE_TTL_MS: '300000',
  RC_ATOMIC_EXECUTOR_AUDIENCE: 'arp-atomic-executor',
  RC_COMPOSITE_EXECUTOR_AUDIENCE: 'arp-composite-executor',
  RC_NODE_REGISTRY_AUDIENCE: 'arp-node-registry',
  RC_PDP_AUDIENCE: 'arp-pdp',
  RC_SELECTION_AUDIENCE: 'arp-selection',
} as const;

/** Service URL variables and their names in the reference deployment, accepted as fallbacks. */
const SERVICE_URLS: [keyof ServiceUrls, keyof typeof ENV_DEFAULTS, string][] = [
  ['atomicExecutor', 'RC_ATOMIC_EXECUTOR_URL', 'ARP_ATOMIC_EXECUTOR_URL'],
  ['compositeExecutor', 'RC_COMPOSITE_EXECUTOR_URL', 'ARP_COMPOSITE_EXECUTOR_URL'],
  ['nodeRegistry', 'RC_NODE_REGISTRY_URL', 'ARP_NODE_REGISTRY_URL'],
  ['pdp', 'RC_PDP_URL', 'ARP_PDP_URL'],
  ['selection', 'RC_SELECTION_URL', 'ARP_SELECTION_URL'],
];

type Env = Readonly<Record<string, string | undefined>>;

function argValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === `--${name}`) return argv[i + 1] ?? '';
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return undefined;
}

export function loadConfig(env: Env, argv: readonly string[] = []): Config {
  const problems: string[] = [];
  const read = (name: keyof typeof ENV_DEFAULTS) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? ENV_DEFAULTS[name] : value;
  };
  const integer = (source: string, text: string, min: number, max: number): number => {
    const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${source} must be an integer from ${min} to ${max}, got '${text}'`);
    }
    return value;
  };
  const boolean = (name: keyof typeof ENV_DEFAULTS): boolean => {
    const text = read(name).toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(text)) return true;
    if (['false', '0', 'no', 'off'].includes(text)) return false;
    problems.push(`${name} must be true or false, got '${read(name)}'`);
    return false;
  };

  const unknownArgs = argv.filter((arg) => arg.startsWith('--') && !/^--(host|port)(=|$)/.test(arg));
  for (const arg of unknownArgs) problems.push(`unknown option ${arg} (accepted: --host H, --port P)`);
  const hostArg = argValue(argv, 'host');
  const portArg = argValue(argv, 'port');
  const host = hostArg ?? read('RC_HOST');
  if (host === '') problems.push('--host needs a value');
  const port =
    portArg === undefined
      ? integer('RC_PORT', read('RC_PORT'), 0, 65535)
      : integer('--port', portArg, 0, 65535);
  const logLevel = read('LOG_LEVEL').toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${logLevel}'`);
  const url = (name: string, text: string): string | undefined => {
    if (text === '') return undefined;
    let parsed: URL | undefined;
    try {
      parsed = new URL(text);
    } catch {}
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol)) {
      problems.push(`${name} must be an http(s) URL, got '${text}'`);
      return undefined;
    }
    return normalizeBaseUrl(text);
  };
  const services: Record<string, string> = {};
  for (const [key, name, fallback] of SERVICE_URLS) {
    const given = read(name) || (env[fallback]?.trim() ?? '');
    const value = url(env[name]?.trim() ? name : fallback, given);
    if (value) services[key] = value;
  }
  const policyDefault = read('RC_POLICY_DEFAULT').toLowerCase();
  if (policyDefault !== 'allow' && policyDefault !== 'deny') {
    problems.push(`RC_POLICY_DEFAULT must be allow or deny, got '${read('RC_POLICY_DEFAULT')}'`);
  }
  const publicUrl = url('RC_PUBLIC_URL', read('RC_PUBLIC_URL'));
  const orchestration: OrchestrationOptions = {
    services,
    ...(publicUrl ? { publicUrl } : {}),
    policyDefault: policyDefault === 'deny' ? 'deny' : 'allow',
    executeTimeoutMs: integer('RC_EXECUTE_TIMEOUT_MS', read('RC_EXECUTE_TIMEOUT_MS'), 1, 86_400_000),
    callTimeoutMs: integer('RC_CALL_TIMEOUT_MS', read('RC_CALL_TIMEOUT_MS'), 1, 3_600_000),
    compositeTimeoutMs: integer('RC_COMPOSITE_TIMEOUT_MS', read('RC_COMPOSITE_TIMEOUT_MS'), 1, 604_800_000),
    dispatchConcurrency: integer('RC_DISPATCH_CONCURRENCY', read('RC_DISPATCH_CONCURRENCY'), 1, 10_000),
    registryCacheTtlMs: integer('RC_REGISTRY_CACHE_TTL_MS', read('RC_REGISTRY_CACHE_TTL_MS'), 0, 86_400_000),
    audiences: {
      atomicExecutor: read('RC_ATOMIC_EXECUTOR_AUDIENCE'),
      compositeExecutor: read('RC_COMPOSITE_EXECUTOR_AUDIENCE'),
      nodeRegistry: read('RC_NODE_REGISTRY_AUDIENCE'),
      pdp: read('RC_PDP_AUDIENCE'),
      selection: read('RC_SELECTION_AUDIENCE'),
    },
  };
  const auth = parseAuthSettings(env, problems);
  const database = parseDatabaseSettings(env, problems);
  if (services.compositeExecutor && !publicUrl) {
    problems.push(
      'RC_PUBLIC_URL is required with RC_COMPOSITE_EXECUTOR_URL (composite executors call it back)',
    );
  }
  const metrics = boolean('RC_METRICS');
  const metricsPortText = read('RC_METRICS_PORT');
  const metricsPort =
    metricsPortText === '' ? undefined : integer('RC_METRICS_PORT', metricsPortText, 0, 65535);
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    problems.push(
      `RC_METRICS_PORT must differ from the main port (${port}); leave it unset to serve /metrics there`,
    );
  }
  if (metricsPort !== undefined && !metrics) problems.push('RC_METRICS_PORT is set but RC_METRICS is off');
  const app: AppOptions = {
    auth,
    orchestration: Object.freeze({ ...orchestration, services: Object.freeze(services) }),
    bodyLimit: integer('RC_BODY_LIMIT_BYTES', read('RC_BODY_LIMIT_BYTES'), 1024, 1024 * 1024 * 1024),
    maxFinishedRuns: integer('RC_MAX_FINISHED_RUNS', read('RC_MAX_FINISHED_RUNS'), 1, 100_000_000),
    maxLiveRuns: integer('RC_MAX_LIVE_RUNS', read('RC_MAX_LIVE_RUNS'), 1, 100_000_000),
    ...(read('RC_DEFAULT_MAX_WALL_TIME_MS')
      ? {
          defaultMaxWallTimeMs: integer(
            'RC_DEFAULT_MAX_WALL_TIME_MS',
            read('RC_DEFAULT_MAX_WALL_TIME_MS'),
            1,
            Number.MAX_SAFE_INTEGER,
          ),
        }
      : {}),
    maxFollowStreams: integer('RC_MAX_FOLLOW_STREAMS', read('RC_MAX_FOLLOW_STREAMS'), 1, 1_000_000),
    maxFollowStreamsPerRun: integer(
      'RC_MAX_FOLLOW_STREAMS_PER_RUN',
      read('RC_MAX_FOLLOW_STREAMS_PER_RUN'),
      1,
      1_000_000,
    ),
    logRequests: boolean('RC_LOG_REQUESTS'),
    requestTimeoutMs: integer('RC_REQUEST_TIMEOUT_MS', read('RC_REQUEST_TIMEOUT_MS'), 1000, 3_600_000),
    keepAliveTimeoutMs: integer('RC_KEEP_ALIVE_TIMEOUT_MS', read('RC_KEEP_ALIVE_TIMEOUT_MS'), 1, 3_600_000),
    maxConnections: integer('RC_MAX_CONNECTIONS', read('RC_MAX_CONNECTIONS'), 1, 1_000_000),
    ...(read('RC_BUILD_COMMIT') ? { buildCommit: read('RC_BUILD_COMMIT') } : {}),
    ...(database ? { database: Object.freeze(database) } : {}),
    ...(metrics ? {} : { metrics: false }),
    ...(metricsPort !== undefined ? { metricsPort } : {}),
  };
  const shutdownTimeoutMs = integer('RC_SHUTDOWN_TIMEOUT_MS', read('RC_SHUTDOWN_TIMEOUT_MS'), 0, 3_600_000);
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({ host, port, logLevel, shutdownTimeoutMs, app: Object.freeze(app) });
}
