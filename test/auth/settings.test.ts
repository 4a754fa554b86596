/**
 * ARP_AUTH_* parsing (reference-behavior.md §5.1, design §5): defaults, profiles and their aliases,
 * the mode override, audience / service id, key sources, algorithms, clock skew, exempt paths, the
 * outbound client credentials, and every startup error, both through parseAuthSettings and loadConfig.
 */
import { describe, expect, it } from 'vitest';
import {
  type AuthSettings,
  DEFAULT_EXEMPT_PATHS,
  disabledAuth,
  KEYCLOAK_DEV_ISSUER,
  parseAuthSettings,
} from '../../src/auth/settings.js';
import { ConfigError, loadConfig } from '../../src/config.js';

type Env = Record<string, string | undefined>;

/** Parses and returns the settings with the problems found. */
function parse(env: Env): { settings: AuthSettings; problems: string[] } {
  const problems: string[] = [];
  const settings = parseAuthSettings(env, problems);
  return { settings, problems };
}

/** Parses settings that must be valid. */
function valid(env: Env): AuthSettings {
  const { settings, problems } = parse(env);
  expect(problems).toEqual([]);
  return settings;
}

/** The problems of an invalid environment (at least one). */
function problemsOf(env: Env): string[] {
  const { problems } = parse(env);
  expect(problems.length).toBeGreaterThan(0);
  return problems;
}

const ISSUER = 'https://idp.example/realms/arp';
/** The smallest valid required-mode environment. */
const REQUIRED: Env = { ARP_AUTH_MODE: 'required', ARP_AUTH_ISSUER: ISSUER };

describe('auth off by default', () => {
  it('nothing set: disabled with the reference defaults, nothing ignored', () => {
    const settings = valid({});
    expect(settings).toEqual(disabledAuth);
    expect(settings.inbound).toEqual({
      mode: 'disabled',
      algorithms: ['RS256'],
      clockSkewSeconds: 60,
      exemptPaths: ['/v1/health', '/v1/version'],
      devSubject: 'dev',
      anonymousSubject: 'anonymous',
    });
    expect(settings.outbound).toBeUndefined();
    expect(settings.ignored).toEqual([]);
  });

  it('unrelated variables are not looked at', () => {
    expect(valid({ PATH: '/usr/bin', RC_PORT: '1', ARP_AUTHX: 'x' })).toEqual(disabledAuth);
  });

  it('stray ARP_AUTH_* variables without MODE or PROFILE leave auth off and are listed as ignored', () => {
    const alone = valid({ ARP_AUTH_ISSUER: ISSUER });
    expect(alone.inbound.mode).toBe('disabled');
    expect(alone.inbound.issuer).toBeUndefined();
    expect(alone.ignored).toEqual(['ARP_AUTH_ISSUER']);

    const several = valid({
      ARP_AUTH_ISSUER: ISSUER,
      ARP_AUTH_AUDIENCE: 'arp-run-coordinator',
      ARP_AUTH_JWKS_URI: 'https://idp.example/certs',
      ARP_AUTH_EMPTY: '',
      ARP_AUTH_BLANK: '   ',
    });
    expect(several.inbound.mode).toBe('disabled');
    expect([...several.ignored].sort()).toEqual([
      'ARP_AUTH_AUDIENCE',
      'ARP_AUTH_ISSUER',
      'ARP_AUTH_JWKS_URI',
    ]);
  });

  it('an empty ARP_AUTH_MODE or ARP_AUTH_PROFILE counts as unset', () => {
    const settings = valid({ ARP_AUTH_MODE: '', ARP_AUTH_PROFILE: '  ' });
    expect(settings.inbound.mode).toBe('disabled');
  });
});

describe('profiles', () => {
  it.each(['dev', 'dev-insecure', 'DEV', ' Dev_Insecure ', 'dev_insecure'])(
    '%j is dev-insecure: disabled',
    (p) => {
      const settings = valid({ ARP_AUTH_PROFILE: p });
      expect(settings.inbound.mode).toBe('disabled');
      expect(settings.inbound.profile).toBe('dev-insecure');
      expect(settings.inbound.issuer).toBeUndefined();
      expect(settings.ignored).toEqual([]);
    },
  );

  it.each(['keycloak', 'KEYCLOAK', 'dev-secure', 'dev-secure-keycloak', 'dev_secure_keycloak', 'Dev_Secure'])(
    '%j is dev-secure-keycloak: required, with the Keycloak dev issuer',
    (p) => {
      const settings = valid({ ARP_AUTH_PROFILE: p, ARP_AUTH_SERVICE_ID: 'arp-run-coordinator' });
      expect(settings.inbound).toMatchObject({
        mode: 'required',
        profile: 'dev-secure-keycloak',
        issuer: KEYCLOAK_DEV_ISSUER,
        audience: 'arp-run-coordinator',
        discoveryUrl: `${KEYCLOAK_DEV_ISSUER}/.well-known/openid-configuration`,
      });
    },
  );

  it('the Keycloak dev issuer is the reference one', () => {
    expect(KEYCLOAK_DEV_ISSUER).toBe('http://localhost:8080/realms/arp-dev');
  });

  it.each(['enterprise', 'prod', 'production', 'PROD', ' Production '])('%j is enterprise: required', (p) => {
    const settings = valid({ ARP_AUTH_PROFILE: p, ARP_AUTH_ISSUER: ISSUER });
    expect(settings.inbound).toMatchObject({ mode: 'required', profile: 'enterprise', issuer: ISSUER });
  });

  it('enterprise has no issuer of its own: without a key source it is a startup error', () => {
    const problems = problemsOf({ ARP_AUTH_PROFILE: 'enterprise' });
    expect(problems.join('\n')).toMatch(/no key source/);
  });

  it('an invalid profile is a startup error naming the value', () => {
    const problems = problemsOf({ ARP_AUTH_PROFILE: 'staging', ARP_AUTH_ISSUER: ISSUER });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('ARP_AUTH_PROFILE');
    expect(problems[0]).toContain("'staging'");
  });

  it('dev-secure-keycloak without an audience or service id is a startup error', () => {
    const problems = problemsOf({ ARP_AUTH_PROFILE: 'dev-secure-keycloak' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/ARP_AUTH_AUDIENCE or ARP_AUTH_SERVICE_ID/);
    expect(problemsOf({ ARP_AUTH_PROFILE: 'keycloak', ARP_AUTH_MODE: 'optional' })).toHaveLength(1);
  });

  it('dev-secure-keycloak needs no audience when the mode is disabled', () => {
    const settings = valid({ ARP_AUTH_PROFILE: 'keycloak', ARP_AUTH_MODE: 'disabled' });
    expect(settings.inbound.mode).toBe('disabled');
    expect(settings.inbound.profile).toBe('dev-secure-keycloak');
  });

  it('ARP_AUTH_ISSUER overrides the profile issuer', () => {
    const settings = valid({
      ARP_AUTH_PROFILE: 'keycloak',
      ARP_AUTH_ISSUER: ISSUER,
      ARP_AUTH_AUDIENCE: 'a',
    });
    expect(settings.inbound.issuer).toBe(ISSUER);
    expect(settings.inbound.discoveryUrl).toBe(`${ISSUER}/.well-known/openid-configuration`);
  });
});

describe('mode', () => {
  it('without ARP_AUTH_MODE the profile decides the mode', () => {
    expect(valid({ ARP_AUTH_PROFILE: 'prod', ARP_AUTH_ISSUER: ISSUER }).inbound.mode).toBe('required');
    expect(valid({ ARP_AUTH_PROFILE: 'dev' }).inbound.mode).toBe('disabled');
  });

  it.each([
    ['required', 'required'],
    ['optional', 'optional'],
    ['disabled', 'disabled'],
    ['REQUIRED', 'required'],
    ['Optional', 'optional'],
    [' DISABLED ', 'disabled'],
  ] as const)('ARP_AUTH_MODE=%j is %s', (raw, mode) => {
    expect(valid({ ARP_AUTH_MODE: raw, ARP_AUTH_ISSUER: ISSUER }).inbound.mode).toBe(mode);
  });

  it('overrides the profile mode in both directions', () => {
    expect(
      valid({ ARP_AUTH_PROFILE: 'dev', ARP_AUTH_MODE: 'required', ARP_AUTH_ISSUER: ISSUER }).inbound,
    ).toMatchObject({ mode: 'required', profile: 'dev-insecure' });
    expect(
      valid({ ARP_AUTH_PROFILE: 'dev', ARP_AUTH_MODE: 'Optional', ARP_AUTH_ISSUER: ISSUER }).inbound.mode,
    ).toBe('optional');
    expect(valid({ ARP_AUTH_PROFILE: 'enterprise', ARP_AUTH_MODE: 'disabled' }).inbound.mode).toBe(
      'disabled',
    );
    expect(
      valid({ ARP_AUTH_PROFILE: 'keycloak', ARP_AUTH_MODE: 'OPTIONAL', ARP_AUTH_SERVICE_ID: 's' }).inbound
        .mode,
    ).toBe('optional');
  });

  it('an invalid mode is a startup error naming the value', () => {
    const problems = problemsOf({ ARP_AUTH_MODE: 'on', ARP_AUTH_ISSUER: ISSUER });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('ARP_AUTH_MODE');
    expect(problems[0]).toContain("'on'");
  });

  it('required or optional mode without any key source is a startup error', () => {
    for (const mode of ['required', 'optional']) {
      const problems = problemsOf({ ARP_AUTH_MODE: mode, ARP_AUTH_AUDIENCE: 'a' });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/ARP_AUTH_JWKS_URI, ARP_AUTH_ISSUER or ARP_AUTH_OIDC_DISCOVERY_URL/);
    }
  });

  it('disabled mode needs no key source', () => {
    expect(valid({ ARP_AUTH_MODE: 'disabled' }).inbound.mode).toBe('disabled');
  });

  it('each key source alone is enough', () => {
    expect(
      valid({ ARP_AUTH_MODE: 'required', ARP_AUTH_JWKS_URI: 'https://idp.example/certs' }).inbound,
    ).toEqual(expect.objectContaining({ jwksUri: 'https://idp.example/certs' }));
    const byDiscovery = valid({
      ARP_AUTH_MODE: 'required',
      ARP_AUTH_OIDC_DISCOVERY_URL: 'https://idp.example/.well-known/openid-configuration',
    }).inbound;
    expect(byDiscovery.discoveryUrl).toBe('https://idp.example/.well-known/openid-configuration');
    expect(byDiscovery.issuer).toBeUndefined();
    expect(valid(REQUIRED).inbound.issuer).toBe(ISSUER);
  });
});

describe('issuer, audience and key source', () => {
  it('the audience is ARP_AUTH_AUDIENCE, else ARP_AUTH_SERVICE_ID, else none', () => {
    expect(valid({ ...REQUIRED, ARP_AUTH_SERVICE_ID: 'svc' }).inbound.audience).toBe('svc');
    expect(
      valid({ ...REQUIRED, ARP_AUTH_SERVICE_ID: 'svc', ARP_AUTH_AUDIENCE: 'aud' }).inbound.audience,
    ).toBe('aud');
    expect(valid({ ...REQUIRED, ARP_AUTH_SERVICE_ID: 'svc', ARP_AUTH_AUDIENCE: '' }).inbound.audience).toBe(
      'svc',
    );
    expect(valid(REQUIRED).inbound.audience).toBeUndefined();
  });

  it('the discovery URL defaults to <issuer>/.well-known/openid-configuration (one slash)', () => {
    expect(valid(REQUIRED).inbound.discoveryUrl).toBe(`${ISSUER}/.well-known/openid-configuration`);
    expect(valid({ ...REQUIRED, ARP_AUTH_ISSUER: `${ISSUER}/` }).inbound.discoveryUrl).toBe(
      `${ISSUER}/.well-known/openid-configuration`,
    );
  });

  it('an explicit discovery URL wins over the derived one', () => {
    const settings = valid({
      ...REQUIRED,
      ARP_AUTH_OIDC_DISCOVERY_URL: 'http://keycloak:8080/realms/arp-dev/.well-known/openid-configuration',
    });
    expect(settings.inbound.discoveryUrl).toBe(
      'http://keycloak:8080/realms/arp-dev/.well-known/openid-configuration',
    );
    expect(settings.inbound.issuer).toBe(ISSUER);
  });

  it('the JWKS URI is kept as given, beside the issuer', () => {
    const settings = valid({ ...REQUIRED, ARP_AUTH_JWKS_URI: 'https://idp.example/certs' });
    expect(settings.inbound.jwksUri).toBe('https://idp.example/certs');
    expect(settings.inbound.issuer).toBe(ISSUER);
  });

  it('a key source that is not an http(s) URL is a startup error', () => {
    expect(problemsOf({ ...REQUIRED, ARP_AUTH_JWKS_URI: 'file:///etc/keys' })[0]).toContain(
      'ARP_AUTH_JWKS_URI',
    );
    expect(problemsOf({ ARP_AUTH_MODE: 'required', ARP_AUTH_OIDC_DISCOVERY_URL: 'not a url' })[0]).toContain(
      'ARP_AUTH_OIDC_DISCOVERY_URL',
    );
  });

  it('the reference JARVIS_Release dev-secure-keycloak environment is accepted as is', () => {
    const settings = valid({
      ARP_AUTH_PROFILE: 'dev-secure-keycloak',
      ARP_AUTH_SERVICE_ID: 'arp-run-coordinator',
      ARP_AUTH_ISSUER: 'http://localhost:8080/realms/arp-dev',
      ARP_AUTH_OIDC_DISCOVERY_URL: 'http://keycloak:8080/realms/arp-dev/.well-known/openid-configuration',
      ARP_AUTH_TOKEN_ENDPOINT: 'http://keycloak:8080/realms/arp-dev/protocol/openid-connect/token',
      ARP_AUTH_CLIENT_ID: 'arp-run-coordinator',
      ARP_AUTH_CLIENT_SECRET: 'secret',
    });
    expect(settings.inbound).toMatchObject({
      mode: 'required',
      issuer: 'http://localhost:8080/realms/arp-dev',
      audience: 'arp-run-coordinator',
      discoveryUrl: 'http://keycloak:8080/realms/arp-dev/.well-known/openid-configuration',
    });
    expect(settings.outbound).toEqual({
      clientId: 'arp-run-coordinator',
      clientSecret: 'secret',
      tokenEndpoint: 'http://keycloak:8080/realms/arp-dev/protocol/openid-connect/token',
    });
  });
});

describe('algorithms', () => {
  it('default RS256', () => {
    expect(valid(REQUIRED).inbound.algorithms).toEqual(['RS256']);
  });

  it('a comma list, trimmed', () => {
    expect(valid({ ...REQUIRED, ARP_AUTH_ALGORITHMS: 'RS256, ES256 ,PS256' }).inbound.algorithms).toEqual([
      'RS256',
      'ES256',
      'PS256',
    ]);
  });

  it.each([',', ' , ', ',,,'])('an empty list (%j) is a startup error', (list) => {
    const problems = problemsOf({ ...REQUIRED, ARP_AUTH_ALGORITHMS: list });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('ARP_AUTH_ALGORITHMS');
  });

  it.each(['none', 'RS256,none', 'NONE'])('%j is a startup error', (list) => {
    expect(problemsOf({ ...REQUIRED, ARP_AUTH_ALGORITHMS: list }).join('\n')).toMatch(/'none'/);
  });

  it('HMAC algorithms are refused (there is no shared secret, only JWKS keys)', () => {
    expect(problemsOf({ ...REQUIRED, ARP_AUTH_ALGORITHMS: 'RS256,HS256' }).join('\n')).toContain('HS256');
  });
});

describe('clock skew', () => {
  it('default 60 seconds', () => {
    expect(valid(REQUIRED).inbound.clockSkewSeconds).toBe(60);
  });

  it.each([
    ['0', 0],
    ['5', 5],
    [' 120 ', 120],
  ])('%j is %d', (text, seconds) => {
    expect(valid({ ...REQUIRED, ARP_AUTH_CLOCK_SKEW_SECONDS: text }).inbound.clockSkewSeconds).toBe(seconds);
  });

  it.each(['abc', '1.5', '1e3', '60s'])('%j is a startup error', (text) => {
    const problems = problemsOf({ ...REQUIRED, ARP_AUTH_CLOCK_SKEW_SECONDS: text });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('ARP_AUTH_CLOCK_SKEW_SECONDS');
    expect(problems[0]).toContain(`'${text}'`);
  });
});

describe('exempt paths and subjects', () => {
  it('default /v1/health and /v1/version', () => {
    expect(valid(REQUIRED).inbound.exemptPaths).toEqual(['/v1/health', '/v1/version']);
    expect([...DEFAULT_EXEMPT_PATHS]).toEqual(['/v1/health', '/v1/version']);
  });

  it('a custom comma list, trimmed, replaces the default', () => {
    expect(
      valid({ ...REQUIRED, ARP_AUTH_EXEMPT_PATHS: ' /v1/runs , /metrics,' }).inbound.exemptPaths,
    ).toEqual(['/v1/runs', '/metrics']);
  });

  it('dev and anonymous subjects default to dev and anonymous and can be set', () => {
    expect(valid(REQUIRED).inbound).toMatchObject({ devSubject: 'dev', anonymousSubject: 'anonymous' });
    expect(
      valid({ ...REQUIRED, ARP_AUTH_DEV_SUBJECT: 'me', ARP_AUTH_ANONYMOUS_SUBJECT: 'guest' }).inbound,
    ).toMatchObject({ devSubject: 'me', anonymousSubject: 'guest' });
  });
});

describe('outbound client credentials', () => {
  it('none set: no outbound auth', () => {
    expect(valid(REQUIRED).outbound).toBeUndefined();
  });

  it('a client id without a secret, or a secret without an id, is a startup error', () => {
    for (const env of [
      { ARP_AUTH_CLIENT_ID: 'rc', ARP_AUTH_ISSUER: ISSUER },
      { ARP_AUTH_CLIENT_SECRET: 's', ARP_AUTH_ISSUER: ISSUER },
      { ...REQUIRED, ARP_AUTH_CLIENT_ID: 'rc' },
    ]) {
      const problems = problemsOf(env);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/ARP_AUTH_CLIENT_ID and ARP_AUTH_CLIENT_SECRET/);
    }
  });

  it('the token endpoint is derived from the issuer as <issuer>/protocol/openid-connect/token', () => {
    const settings = valid({ ...REQUIRED, ARP_AUTH_CLIENT_ID: 'rc', ARP_AUTH_CLIENT_SECRET: 's' });
    expect(settings.outbound).toEqual({
      clientId: 'rc',
      clientSecret: 's',
      tokenEndpoint: `${ISSUER}/protocol/openid-connect/token`,
    });
    const slash = valid({
      ...REQUIRED,
      ARP_AUTH_ISSUER: `${ISSUER}/`,
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
    });
    expect(slash.outbound?.tokenEndpoint).toBe(`${ISSUER}/protocol/openid-connect/token`);
  });

  it('the profile issuer is used for the derivation too', () => {
    const settings = valid({
      ARP_AUTH_PROFILE: 'keycloak',
      ARP_AUTH_SERVICE_ID: 'arp-run-coordinator',
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
    });
    expect(settings.outbound?.tokenEndpoint).toBe(`${KEYCLOAK_DEV_ISSUER}/protocol/openid-connect/token`);
  });

  it('ARP_AUTH_TOKEN_ENDPOINT wins over the derived endpoint', () => {
    const settings = valid({
      ...REQUIRED,
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
      ARP_AUTH_TOKEN_ENDPOINT: 'https://tokens.example/token',
    });
    expect(settings.outbound?.tokenEndpoint).toBe('https://tokens.example/token');
  });

  it('credentials with neither an endpoint nor an issuer are a startup error', () => {
    const problems = problemsOf({ ARP_AUTH_CLIENT_ID: 'rc', ARP_AUTH_CLIENT_SECRET: 's' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('ARP_AUTH_TOKEN_ENDPOINT');
  });

  it('a token endpoint that is not an http(s) URL is a startup error', () => {
    const problems = problemsOf({
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
      ARP_AUTH_TOKEN_ENDPOINT: 'ftp://tokens',
    });
    expect(problems[0]).toContain('ARP_AUTH_TOKEN_ENDPOINT');
  });

  it('outbound credentials work with inbound auth off, and are not reported as ignored', () => {
    const settings = valid({
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
      ARP_AUTH_TOKEN_ENDPOINT: 'https://tokens.example/token',
    });
    expect(settings.inbound.mode).toBe('disabled');
    expect(settings.outbound).toEqual({
      clientId: 'rc',
      clientSecret: 's',
      tokenEndpoint: 'https://tokens.example/token',
    });
    expect(settings.ignored).toEqual([]);
  });

  it('ARP_AUTH_ISSUER used to derive the outbound token endpoint is not reported as ignored', () => {
    // With inbound auth off, the issuer still has an effect: it is where the token endpoint comes from.
    const settings = valid({
      ARP_AUTH_CLIENT_ID: 'rc',
      ARP_AUTH_CLIENT_SECRET: 's',
      ARP_AUTH_ISSUER: ISSUER,
    });
    expect(settings.inbound.mode).toBe('disabled');
    expect(settings.outbound?.tokenEndpoint).toBe(`${ISSUER}/protocol/openid-connect/token`);
    expect(settings.ignored).not.toContain('ARP_AUTH_ISSUER');
  });
});

describe('every problem at once', () => {
  it('parseAuthSettings collects all problems of one environment', () => {
    const problems = problemsOf({
      ARP_AUTH_PROFILE: 'nope',
      ARP_AUTH_MODE: 'sometimes',
      ARP_AUTH_ALGORITHMS: 'none',
      ARP_AUTH_CLOCK_SKEW_SECONDS: 'soon',
      ARP_AUTH_CLIENT_ID: 'rc',
    });
    const text = problems.join('\n');
    for (const name of [
      'ARP_AUTH_PROFILE',
      'ARP_AUTH_MODE',
      'ARP_AUTH_ALGORITHMS',
      'ARP_AUTH_CLOCK_SKEW_SECONDS',
      'ARP_AUTH_CLIENT_SECRET',
      'no key source',
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe('loadConfig', () => {
  it('carries the parsed auth settings', () => {
    expect(loadConfig({}).app.auth).toEqual(disabledAuth);
    const config = loadConfig({
      ARP_AUTH_PROFILE: 'keycloak',
      ARP_AUTH_SERVICE_ID: 'arp-run-coordinator',
      ARP_AUTH_ALGORITHMS: 'RS256,ES256',
      ARP_AUTH_CLOCK_SKEW_SECONDS: '10',
      ARP_AUTH_EXEMPT_PATHS: '/v1/health',
    });
    expect(config.app.auth.inbound).toEqual({
      mode: 'required',
      profile: 'dev-secure-keycloak',
      issuer: KEYCLOAK_DEV_ISSUER,
      audience: 'arp-run-coordinator',
      discoveryUrl: `${KEYCLOAK_DEV_ISSUER}/.well-known/openid-configuration`,
      algorithms: ['RS256', 'ES256'],
      clockSkewSeconds: 10,
      exemptPaths: ['/v1/health'],
      devSubject: 'dev',
      anonymousSubject: 'anonymous',
    });
  });

  it('reports ignored variables', () => {
    expect(loadConfig({ ARP_AUTH_ISSUER: ISSUER }).app.auth.ignored).toEqual(['ARP_AUTH_ISSUER']);
  });

  it('throws a ConfigError listing every auth problem, beside the other problems', () => {
    let caught: unknown;
    try {
      loadConfig({
        RC_PORT: 'eighty',
        ARP_AUTH_PROFILE: 'dev-secure-keycloak',
        ARP_AUTH_ALGORITHMS: ',',
        ARP_AUTH_CLOCK_SKEW_SECONDS: '1.5',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.problems).toHaveLength(4);
    expect(error.problems.join('\n')).toMatch(/RC_PORT/);
    expect(error.problems.join('\n')).toMatch(/ARP_AUTH_AUDIENCE or ARP_AUTH_SERVICE_ID/);
    expect(error.problems.join('\n')).toMatch(/ARP_AUTH_ALGORITHMS/);
    expect(error.problems.join('\n')).toMatch(/ARP_AUTH_CLOCK_SKEW_SECONDS/);
    for (const problem of error.problems) expect(error.message).toContain(problem);
  });

  it.each([
    { ARP_AUTH_MODE: 'bogus' },
    { ARP_AUTH_PROFILE: 'bogus' },
    { ARP_AUTH_MODE: 'required' },
    { ARP_AUTH_PROFILE: 'keycloak' },
    { ARP_AUTH_MODE: 'required', ARP_AUTH_ISSUER: ISSUER, ARP_AUTH_ALGORITHMS: 'none' },
    { ARP_AUTH_CLIENT_ID: 'rc', ARP_AUTH_ISSUER: ISSUER },
  ])('refuses to start with %j', (env) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
  });
});
