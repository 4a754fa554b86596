import { describe, expect, it } from 'vitest';
import { disabledAuth } from '../src/auth/settings.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { defaultOrchestration } from '../src/coordinator/wiring.js';
import { redactUrl } from '../src/store/postgres/settings.js';

describe('loadConfig', () => {
  it('has working defaults', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 8081,
      logLevel: 'info',
      shutdownTimeoutMs: 10_000,
      app: {
        bodyLimit: 1_048_576,
        maxFinishedRuns: 10_000,
        maxLiveRuns: 100_000,
        maxFollowStreams: 10_000,
        maxFollowStreamsPerRun: 1_000,
        logRequests: false,
        requestTimeoutMs: 30_000,
        keepAliveTimeoutMs: 72_000,
        maxConnections: 10_000,
        orchestration: defaultOrchestration,
        auth: disabledAuth,
      },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.app)).toBe(true);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      RC_HOST: '0.0.0.0',
      RC_PORT: '9000',
      LOG_LEVEL: 'DEBUG',
      RC_LOG_REQUESTS: 'yes',
      RC_BODY_LIMIT_BYTES: '2048',
      RC_MAX_FINISHED_RUNS: '5',
      RC_MAX_LIVE_RUNS: '7',
      RC_DEFAULT_MAX_WALL_TIME_MS: '2592000000',
      RC_SHUTDOWN_TIMEOUT_MS: '0',
      RC_BUILD_COMMIT: 'abc123',
      RC_REQUEST_TIMEOUT_MS: '5000',
      RC_KEEP_ALIVE_TIMEOUT_MS: '1000',
      RC_MAX_CONNECTIONS: '64',
      RC_MAX_FOLLOW_STREAMS: '50',
      RC_MAX_FOLLOW_STREAMS_PER_RUN: '7',
    });
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 9000,
      logLevel: 'debug',
      shutdownTimeoutMs: 0,
      app: {
        bodyLimit: 2048,
        maxFinishedRuns: 5,
        maxLiveRuns: 7,
        defaultMaxWallTimeMs: 2_592_000_000,
        maxFollowStreams: 50,
        maxFollowStreamsPerRun: 7,
        logRequests: true,
        requestTimeoutMs: 5000,
        keepAliveTimeoutMs: 1000,
        maxConnections: 64,
        buildCommit: 'abc123',
        orchestration: defaultOrchestration,
        auth: disabledAuth,
      },
    });
  });

  it('reads the orchestration settings and normalises service URLs', () => {
    const config = loadConfig({
      RC_ATOMIC_EXECUTOR_URL: 'http://127.0.0.1:8082/v1/',
      RC_COMPOSITE_EXECUTOR_URL: 'http://ce:8083/',
      RC_PUBLIC_URL: 'http://rc.internal:8081/v1',
      ARP_NODE_REGISTRY_URL: 'http://nr:8084',
      RC_PDP_URL: 'https://pdp.example',
      RC_SELECTION_URL: 'http://sel:8085',
      RC_POLICY_DEFAULT: 'DENY',
      RC_EXECUTE_TIMEOUT_MS: '1000',
      RC_CALL_TIMEOUT_MS: '200',
      RC_COMPOSITE_TIMEOUT_MS: '5000',
      RC_DISPATCH_CONCURRENCY: '4',
      RC_REGISTRY_CACHE_TTL_MS: '0',
    });
    expect(config.app.orchestration).toEqual({
      services: {
        atomicExecutor: 'http://127.0.0.1:8082',
        compositeExecutor: 'http://ce:8083',
        nodeRegistry: 'http://nr:8084',
        pdp: 'https://pdp.example',
        selection: 'http://sel:8085',
      },
      publicUrl: 'http://rc.internal:8081',
      policyDefault: 'deny',
      executeTimeoutMs: 1000,
      callTimeoutMs: 200,
      compositeTimeoutMs: 5000,
      dispatchConcurrency: 4,
      registryCacheTtlMs: 0,
      audiences: defaultOrchestration.audiences,
    });
  });

  it('rejects bad orchestration settings', () => {
    expect(() => loadConfig({ RC_ATOMIC_EXECUTOR_URL: 'ftp://x' })).toThrow(
      /RC_ATOMIC_EXECUTOR_URL must be an http/,
    );
    expect(() => loadConfig({ RC_PDP_URL: 'not a url' })).toThrow(/RC_PDP_URL/);
    expect(() => loadConfig({ RC_POLICY_DEFAULT: 'maybe' })).toThrow(/RC_POLICY_DEFAULT/);
    expect(() => loadConfig({ RC_DISPATCH_CONCURRENCY: '0' })).toThrow(/RC_DISPATCH_CONCURRENCY/);
    expect(() => loadConfig({ RC_COMPOSITE_EXECUTOR_URL: 'http://ce:8083' })).toThrow(
      /RC_PUBLIC_URL is required/,
    );
  });

  it.each([
    ['RC_REQUEST_TIMEOUT_MS', '999'],
    ['RC_REQUEST_TIMEOUT_MS', '0'],
    ['RC_KEEP_ALIVE_TIMEOUT_MS', '0'],
    ['RC_KEEP_ALIVE_TIMEOUT_MS', '5s'],
    ['RC_MAX_CONNECTIONS', '0'],
    ['RC_MAX_CONNECTIONS', '-1'],
  ])('rejects %s=%s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name} must be an integer`));
  });

  it('rejects follow stream caps that are not positive integers', () => {
    for (const value of ['0', '-1', '1.5', 'many', '1000001']) {
      expect(() => loadConfig({ RC_MAX_FOLLOW_STREAMS: value }), value).toThrow(
        /RC_MAX_FOLLOW_STREAMS must be an integer from 1 to 1000000/,
      );
      expect(() => loadConfig({ RC_MAX_FOLLOW_STREAMS_PER_RUN: value }), value).toThrow(
        /RC_MAX_FOLLOW_STREAMS_PER_RUN must be an integer from 1 to 1000000/,
      );
    }
  });

  it('lets --host and --port override the environment', () => {
    expect(loadConfig({ RC_PORT: '1' }, ['--host', '::1', '--port=0'])).toMatchObject({
      host: '::1',
      port: 0,
    });
    expect(loadConfig({}, ['--port', '8090'])).toMatchObject({ port: 8090 });
  });

  it('reports every problem at once', () => {
    try {
      loadConfig(
        {
          RC_PORT: 'http',
          LOG_LEVEL: 'loud',
          RC_LOG_REQUESTS: 'maybe',
          RC_BODY_LIMIT_BYTES: '-1',
          RC_MAX_FINISHED_RUNS: '0',
          RC_MAX_LIVE_RUNS: '0',
          RC_DEFAULT_MAX_WALL_TIME_MS: 'forever',
        },
        ['--verbose'],
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems).toHaveLength(8);
      expect(problems.join('\n')).toMatch(/RC_MAX_LIVE_RUNS.*'0'/);
      expect(problems.join('\n')).toMatch(/RC_DEFAULT_MAX_WALL_TIME_MS.*'forever'/);
      expect(problems.join('\n')).toMatch(/RC_PORT.*'http'/);
      expect(problems.join('\n')).toMatch(/LOG_LEVEL/);
      expect(problems.join('\n')).toMatch(/--verbose/);
    }
  });

  it.each([['65536'], ['1.5'], ['0x10'], ['']])('rejects the port %j given on the command line', (port) => {
    expect(() => loadConfig({}, ['--port', port])).toThrow(ConfigError);
  });
});

describe('PostgreSQL settings', () => {
  it('are absent without RC_DATABASE_URL (the memory store)', () => {
    expect(loadConfig({}).app.database).toBeUndefined();
  });

  it('are read with their defaults', () => {
    const { database } = loadConfig({ RC_DATABASE_URL: 'postgres://rc:secret@db:5432/rc' }).app;
    expect(database).toMatchObject({
      url: 'postgres://rc:secret@db:5432/rc',
      schema: 'arp_rc',
      poolSize: 10,
      statementTimeoutMs: 30_000,
      leaseTtlMs: 30_000,
      reconcileIntervalMs: 5_000,
      retentionMs: 7 * 86_400_000,
    });
    expect(database?.instanceId).toMatch(/.+-\d+-[0-9a-f]{6}$/);
  });

  it('reads every variable', () => {
    const { database } = loadConfig({
      RC_DATABASE_URL: 'postgresql://db/rc',
      RC_DATABASE_SCHEMA: 'coordinator_2',
      RC_DATABASE_POOL_SIZE: '25',
      RC_DATABASE_STATEMENT_TIMEOUT_MS: '5000',
      RC_INSTANCE_ID: 'pod-3',
      RC_LEASE_TTL_MS: '10000',
      RC_RECONCILE_INTERVAL_MS: '1000',
      RC_RETENTION_MS: '0',
    }).app;
    expect(database).toEqual({
      url: 'postgresql://db/rc',
      schema: 'coordinator_2',
      poolSize: 25,
      statementTimeoutMs: 5000,
      instanceId: 'pod-3',
      leaseTtlMs: 10_000,
      reconcileIntervalMs: 1000,
      retentionMs: 0,
    });
  });

  it('reports every problem at once, never echoing a password', () => {
    try {
      loadConfig({
        RC_DATABASE_URL: 'mysql://rc:hunter2@db/rc',
        RC_DATABASE_SCHEMA: 'drop table; --',
        RC_DATABASE_POOL_SIZE: '0',
        RC_LEASE_TTL_MS: '2000',
        RC_RECONCILE_INTERVAL_MS: '5000',
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const text = (error as ConfigError).problems.join('\n');
      expect(text).toMatch(/RC_DATABASE_URL must be a postgres:\/\/ URL/);
      expect(text).not.toContain('hunter2');
      expect(text).toMatch(/RC_DATABASE_SCHEMA/);
      expect(text).toMatch(/RC_DATABASE_POOL_SIZE/);
      expect(text).toMatch(/RC_RECONCILE_INTERVAL_MS must be shorter than RC_LEASE_TTL_MS/);
    }
  });

  it('names the database in logs without its password', () => {
    expect(redactUrl('postgres://rc:hunter2@db:5432/rc?sslmode=require')).toBe(
      'postgres://rc:***@db:5432/rc?sslmode=require',
    );
    expect(redactUrl('postgres://db/rc')).toBe('postgres://db/rc');
  });
});
