/** RC_METRICS and RC_METRICS_PORT, validated at startup like every other setting. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const problems = (env: Record<string, string>): readonly string[] => {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

describe('metrics settings', () => {
  it('metrics are on, on the main port, by default', () => {
    const { app } = loadConfig({});
    expect(app.metrics).toBeUndefined();
    expect(app.metricsPort).toBeUndefined();
  });

  it('RC_METRICS=off turns them off; other words are refused', () => {
    expect(loadConfig({ RC_METRICS: 'off' }).app.metrics).toBe(false);
    expect(loadConfig({ RC_METRICS: 'true' }).app.metrics).toBeUndefined();
    expect(problems({ RC_METRICS: 'sometimes' })).toEqual([
      "RC_METRICS must be true or false, got 'sometimes'",
    ]);
  });

  it('RC_METRICS_PORT is a port other than the main one, and needs metrics on', () => {
    expect(loadConfig({ RC_METRICS_PORT: '9464' }).app.metricsPort).toBe(9464);
    expect(loadConfig({ RC_METRICS_PORT: '0' }).app.metricsPort).toBe(0);
    expect(problems({ RC_METRICS_PORT: 'abc' })).toEqual([
      "RC_METRICS_PORT must be an integer from 0 to 65535, got 'abc'",
    ]);
    expect(problems({ RC_METRICS_PORT: '70000' })).toEqual([
      "RC_METRICS_PORT must be an integer from 0 to 65535, got '70000'",
    ]);
    expect(problems({ RC_PORT: '9000', RC_METRICS_PORT: '9000' })).toEqual([
      'RC_METRICS_PORT must differ from the main port (9000); leave it unset to serve /metrics there',
    ]);
    expect(problems({ RC_METRICS: 'off', RC_METRICS_PORT: '9464' })).toEqual([
      'RC_METRICS_PORT is set but RC_METRICS is off',
    ]);
  });
});
