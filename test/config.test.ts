import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('has working defaults', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 8081,
      logLevel: 'info',
      shutdownTimeoutMs: 10_000,
      app: { bodyLimit: 1_048_576, maxFinishedRuns: 10_000, logRequests: false },
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
      RC_SHUTDOWN_TIMEOUT_MS: '0',
      RC_BUILD_COMMIT: 'abc123',
    });
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 9000,
      logLevel: 'debug',
      shutdownTimeoutMs: 0,
      app: { bodyLimit: 2048, maxFinishedRuns: 5, logRequests: true, buildCommit: 'abc123' },
    });
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
        },
        ['--verbose'],
      );
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems).toHaveLength(6);
      expect(problems.join('\n')).toMatch(/RC_PORT.*'http'/);
      expect(problems.join('\n')).toMatch(/LOG_LEVEL/);
      expect(problems.join('\n')).toMatch(/--verbose/);
    }
  });

  it.each([['65536'], ['1.5'], ['0x10'], ['']])('rejects the port %j given on the command line', (port) => {
    expect(() => loadConfig({}, ['--port', port])).toThrow(ConfigError);
  });
});
