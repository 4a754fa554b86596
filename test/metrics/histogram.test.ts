/** The hot-path histogram exposes exactly what prom-client's own Histogram would for the same observations. */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../src/metrics/histogram.js';

describe('FastHistogram', () => {
  it('renders the same exposition as prom-client Histogram', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FastHistogram({
      name: 'x_seconds',
      help: 'help "text"',
      labelNames: ['operation', 'status_class'],
      buckets,
      registry: ours,
    });
    const reference = new Histogram({
      name: 'x_seconds',
      help: 'help "text"',
      labelNames: ['operation', 'status_class'],
      buckets,
      registers: [theirs],
    });
    const observations: [string, string, number][] = [
      ['get_run', '2xx', 0.0005],
      ['get_run', '2xx', 0.001],
      ['get_run', '2xx', 0.5],
      ['get_run', '4xx', 3],
      ['start_run', '2xx', 0.02],
      ['we"ird\\op', '5xx', 0.01],
    ];
    for (const [operation, statusClass, value] of observations) {
      fast.labels(operation, statusClass).observe(value);
      reference.labels(operation, statusClass).observe(value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

describe('FastHistogram as JSON', () => {
  it('gives each value all its labels, like prom-client', async () => {
    const registry = new Registry();
    const fast = new FastHistogram({
      name: 'y_seconds',
      help: 'h',
      labelNames: ['op'],
      buckets: [1],
      registry,
    });
    fast.labels('a').observe(0.5);
    const [metric] = await registry.getMetricsAsJSON();
    expect(metric).toMatchObject({ name: 'y_seconds', type: 'histogram' });
    expect((metric as unknown as { values: unknown[] }).values).toEqual([
      { labels: { op: 'a', le: 1 }, value: 1, metricName: 'y_seconds_bucket' },
      { labels: { op: 'a', le: '+Inf' }, value: 1, metricName: 'y_seconds_bucket' },
      { labels: { op: 'a' }, value: 0.5, metricName: 'y_seconds_sum' },
      { labels: { op: 'a' }, value: 1, metricName: 'y_seconds_count' },
    ]);
  });
});
