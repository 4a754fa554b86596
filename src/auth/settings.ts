/**
 * The ARP_AUTH_* settings, with the semantics of the ARP reference services so that an existing
 * deployment's environment works unchanged: profiles and their aliases, mode override, issuer,
 * audience (or service id), JWKS URI or OIDC discovery, algorithms, clock skew and exempt paths;
 * plus the client credentials for outbound calls. Parsing collects every problem at once.
 */

export type AuthMode = 'disabled' | 'optional' | 'required';

export interface InboundAuth {
  readonly mode: AuthMode;
  /** The profile after resolving aliases, if one was set. */
  readonly profile?: string;
  readonly issuer?: string;
  readonly audience?: string;
  readonly jwksUri?: string;
  readonly discoveryUrl?: string;
  readonly algorithms: readonly string[];
  readonly clockSkewSeconds: number;
  /** Exact paths that skip authentication (health and version are always public). */
  readonly exemptPaths: readonly string[];
  readonly devSubject: string;
  readonly anonymousSubject: string;
}

export interface OutboundAuth {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tokenEndpoint: string;
}

export interface AuthSettings {
  readonly inbound: InboundAuth;
  /** Client credentials for calls to executors, registry, PDP and selection; absent = no token. */
  readonly outbound?: OutboundAuth;
  /** ARP_AUTH_* variables that were set but have no effect (auth is off without MODE or PROFILE). */
  readonly ignored: readonly string[];
}

export const DEFAULT_EXEMPT_PATHS = ['/v1/health', '/v1/version'] as const;
export const KEYCLOAK_DEV_ISSUER = 'http://localhost:8080/realms/arp-dev';

const PROFILES: Record<string, { mode: AuthMode; issuer?: string }> = {
  'dev-insecure': { mode: 'disabled' },
  'dev-secure-keycloak': { mode: 'required', issuer: KEYCLOAK_DEV_ISSUER },
  enterprise: { mode: 'required' },
};

const ALIASES: Record<string, string> = {
  dev: 'dev-insecure',
  'dev-insecure': 'dev-insecure',
  'dev-secure': 'dev-secure-keycloak',
  keycloak: 'dev-secure-keycloak',
  'dev-secure-keycloak': 'dev-secure-keycloak',
  enterprise: 'enterprise',
  prod: 'enterprise',
  production: 'enterprise',
};

export const disabledAuth: AuthSettings = {
  inbound: {
    mode: 'disabled',
    algorithms: ['RS256'],
    clockSkewSeconds: 60,
    exemptPaths: DEFAULT_EXEMPT_PATHS,
    devSubject: 'dev',
    anonymousSubject: 'anonymous',
  },
  ignored: [],
};

type Env = Readonly<Record<string, string | undefined>>;

const trimTrailingSlash = (url: string) => url.replace(/\/+$/, '');

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Reads the ARP_AUTH_* variables; `problems` receives one line per invalid setting. */
export function parseAuthSettings(env: Env, problems: string[]): AuthSettings {
  const get = (name: string) => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const rawProfile = get('ARP_AUTH_PROFILE');
  const rawMode = get('ARP_AUTH_MODE');

  let profile: string | undefined;
  if (rawProfile !== undefined) {
    profile = ALIASES[rawProfile.toLowerCase().replaceAll('_', '-')];
    if (!profile) {
      problems.push(
        `ARP_AUTH_PROFILE must be one of dev-insecure (dev), dev-secure-keycloak (dev-secure, keycloak), ` +
          `enterprise (prod, production); got '${rawProfile}'`,
      );
    }
  }
  let mode: AuthMode = profile ? PROFILES[profile]!.mode : 'required';
  if (rawMode !== undefined) {
    const lower = rawMode.toLowerCase();
    if (lower === 'disabled' || lower === 'optional' || lower === 'required') mode = lower;
    else problems.push(`ARP_AUTH_MODE must be disabled, optional or required; got '${rawMode}'`);
  }
  // As the ARP template: authentication is only configured by ARP_AUTH_MODE or ARP_AUTH_PROFILE.
  const configured = rawProfile !== undefined || rawMode !== undefined;
  const outbound = parseOutbound(get, problems, profile);
  if (!configured) {
    // The issuer still names the token endpoint when outbound credentials are set.
    const used = outbound ? [...OUTBOUND_VARS, 'ARP_AUTH_ISSUER'] : OUTBOUND_VARS;
    const ignored = Object.keys(env).filter(
      (name) => name.startsWith('ARP_AUTH_') && get(name) !== undefined && !used.includes(name),
    );
    return { ...disabledAuth, ...(outbound ? { outbound } : {}), ignored };
  }

  const issuer = get('ARP_AUTH_ISSUER') ?? (profile ? PROFILES[profile]!.issuer : undefined);
  const audience = get('ARP_AUTH_AUDIENCE') ?? get('ARP_AUTH_SERVICE_ID');
  const jwksUri = get('ARP_AUTH_JWKS_URI');
  const discoveryUrl =
    get('ARP_AUTH_OIDC_DISCOVERY_URL') ??
    (issuer ? `${trimTrailingSlash(issuer)}/.well-known/openid-configuration` : undefined);
  const algorithms = (get('ARP_AUTH_ALGORITHMS') ?? 'RS256')
    .split(',')
    .map((alg) => alg.trim())
    .filter(Boolean);
  if (algorithms.length === 0) problems.push('ARP_AUTH_ALGORITHMS must name at least one algorithm');
  for (const alg of algorithms) {
    if (alg.toLowerCase() === 'none') problems.push("ARP_AUTH_ALGORITHMS must not include 'none'");
    else if (/^HS/i.test(alg))
      problems.push(`ARP_AUTH_ALGORITHMS: ${alg} needs a shared secret; only JWKS keys are supported`);
  }
  const skewText = get('ARP_AUTH_CLOCK_SKEW_SECONDS') ?? '60';
  const clockSkewSeconds = /^\d+$/.test(skewText) ? Number(skewText) : Number.NaN;
  if (!Number.isSafeInteger(clockSkewSeconds)) {
    problems.push(`ARP_AUTH_CLOCK_SKEW_SECONDS must be a whole number of seconds; got '${skewText}'`);
  }
  const exemptText = env.ARP_AUTH_EXEMPT_PATHS;
  const exemptPaths =
    exemptText === undefined
      ? [...DEFAULT_EXEMPT_PATHS]
      : exemptText
          .split(',')
          .map((path) => path.trim())
          .filter(Boolean);

  if (mode !== 'disabled') {
    if (!jwksUri && !discoveryUrl) {
      problems.push(
        'authentication is enabled but no key source is set: set ARP_AUTH_JWKS_URI, ARP_AUTH_ISSUER or ARP_AUTH_OIDC_DISCOVERY_URL',
      );
    }
    if (profile === 'dev-secure-keycloak' && !audience) {
      problems.push('ARP_AUTH_PROFILE=dev-secure-keycloak needs ARP_AUTH_AUDIENCE or ARP_AUTH_SERVICE_ID');
    }
    for (const [name, value] of [
      ['ARP_AUTH_JWKS_URI', jwksUri],
      ['ARP_AUTH_OIDC_DISCOVERY_URL', discoveryUrl],
    ] as const) {
      if (value !== undefined && !isHttpUrl(value))
        problems.push(`${name} must be an http(s) URL; got '${value}'`);
    }
  }
  const inbound: InboundAuth = {
    mode,
    ...(profile ? { profile } : {}),
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
    ...(jwksUri ? { jwksUri } : {}),
    ...(discoveryUrl ? { discoveryUrl } : {}),
    algorithms,
    clockSkewSeconds,
    exemptPaths,
    devSubject: get('ARP_AUTH_DEV_SUBJECT') ?? 'dev',
    anonymousSubject: get('ARP_AUTH_ANONYMOUS_SUBJECT') ?? 'anonymous',
  };
  return { inbound, ...(outbound ? { outbound } : {}), ignored: [] };
}

const OUTBOUND_VARS = ['ARP_AUTH_CLIENT_ID', 'ARP_AUTH_CLIENT_SECRET', 'ARP_AUTH_TOKEN_ENDPOINT'];

function parseOutbound(
  get: (name: string) => string | undefined,
  problems: string[],
  profile: string | undefined,
): OutboundAuth | undefined {
  const clientId = get('ARP_AUTH_CLIENT_ID');
  const clientSecret = get('ARP_AUTH_CLIENT_SECRET');
  if (clientId === undefined && clientSecret === undefined) return undefined;
  if (clientId === undefined || clientSecret === undefined) {
    problems.push(
      'ARP_AUTH_CLIENT_ID and ARP_AUTH_CLIENT_SECRET must be set together (outbound client credentials)',
    );
    return undefined;
  }
  const issuer = get('ARP_AUTH_ISSUER') ?? (profile ? PROFILES[profile]?.issuer : undefined);
  const tokenEndpoint =
    get('ARP_AUTH_TOKEN_ENDPOINT') ??
    (issuer ? `${trimTrailingSlash(issuer)}/protocol/openid-connect/token` : undefined);
  if (!tokenEndpoint) {
    problems.push(
      'outbound client credentials need ARP_AUTH_TOKEN_ENDPOINT (or ARP_AUTH_ISSUER to derive it)',
    );
    return undefined;
  }
  if (!isHttpUrl(tokenEndpoint)) {
    problems.push(`ARP_AUTH_TOKEN_ENDPOINT must be an http(s) URL; got '${tokenEndpoint}'`);
    return undefined;
  }
  return { clientId, clientSecret, tokenEndpoint };
}
