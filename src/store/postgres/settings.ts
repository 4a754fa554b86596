/**
 * The RC_DATABASE_* and recovery settings. Without RC_DATABASE_URL the coordinator keeps everything
 * in memory; with it, Runs live in PostgreSQL and several processes can share them. Parsing collects
 * every problem at once, like the other settings.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export interface DatabaseSettings {
  readonly url: string;
  readonly schema: string;
  readonly poolSize: number;
  readonly statementTimeoutMs: number;
  /** This process among those sharing the database (owner of its leases). */
  readonly instanceId: string;
  readonly leaseTtlMs: number;
  readonly reconcileIntervalMs: number;
  /** Finished Runs older than this are deleted; 0 keeps them forever. */
  readonly retentionMs: number;
}

export const DATABASE_DEFAULTS = {
  RC_DATABASE_URL: '',
  RC_DATABASE_SCHEMA: 'arp_rc',
  RC_DATABASE_POOL_SIZE: '10',
  RC_DATABASE_STATEMENT_TIMEOUT_MS: '30000',
  RC_INSTANCE_ID: '',
  RC_LEASE_TTL_MS: '30000',
  RC_RECONCILE_INTERVAL_MS: '5000',
  RC_RETENTION_MS: String(7 * 86_400_000),
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** The URL with its password replaced, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export function parseDatabaseSettings(env: Env, problems: string[]): DatabaseSettings | undefined {
  const read = (name: keyof typeof DATABASE_DEFAULTS) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? DATABASE_DEFAULTS[name] : value;
  };
  const integer = (name: keyof typeof DATABASE_DEFAULTS, min: number, max: number) => {
    const text = read(name);
    const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got '${text}'`);
    }
    return value;
  };
  const url = read('RC_DATABASE_URL');
  if (url === '') return undefined;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {}
  if (!parsed || !['postgres:', 'postgresql:'].includes(parsed.protocol)) {
    problems.push(`RC_DATABASE_URL must be a postgres:// URL, got '${redactUrl(url)}'`);
  }
  const schema = read('RC_DATABASE_SCHEMA');
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,49}$/.test(schema)) {
    problems.push(
      `RC_DATABASE_SCHEMA must be a plain SQL identifier of at most 50 characters, got '${schema}'`,
    );
  }
  const leaseTtlMs = integer('RC_LEASE_TTL_MS', 1_000, 3_600_000);
  const reconcileIntervalMs = integer('RC_RECONCILE_INTERVAL_MS', 100, 3_600_000);
  if (reconcileIntervalMs >= leaseTtlMs) {
    problems.push('RC_RECONCILE_INTERVAL_MS must be shorter than RC_LEASE_TTL_MS');
  }
  return {
    url,
    schema,
    poolSize: integer('RC_DATABASE_POOL_SIZE', 1, 1_000),
    statementTimeoutMs: integer('RC_DATABASE_STATEMENT_TIMEOUT_MS', 100, 3_600_000),
    instanceId: read('RC_INSTANCE_ID') || `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    leaseTtlMs,
    reconcileIntervalMs,
    retentionMs: integer('RC_RETENTION_MS', 0, Number.MAX_SAFE_INTEGER),
  };
}
