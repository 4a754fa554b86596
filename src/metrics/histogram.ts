/**
 * A histogram for the per-request hot path, exposed through a prom-client Registry like any other
 * metric (`registerMetric`, the same exposition as prom-client's own Histogram). prom-client's
 * `observe`, even on a cached child, validates and hashes the labels on every call; here a child
 * is a plain object found by key once, and an observation is a bucket scan and three increments.
 */
import type { Metric, Registry } from 'prom-client';

export interface HistogramChild {
  observe(value: number): void;
}

interface Child {
  readonly labels: Readonly<Record<string, string>>;
  /** Per bucket (not cumulative); the last slot counts values above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #labelNames: readonly string[];
  readonly #children = new Map<string, Child>();

  constructor(options: {
    name: string;
    help: string;
    labelNames: readonly string[];
    buckets: readonly number[];
    registry: Registry;
  }) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    options.registry.registerMetric(this as unknown as Metric);
  }

  /** The child of these label values (in `labelNames` order); keep it, it is the cheap path. */
  labels(...values: string[]): HistogramChild {
    const key = values.join('\u0000');
    let child = this.#children.get(key);
    if (!child) {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((name, i) => {
        labels[name] = values[i] ?? '';
      });
      child = { labels, counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 };
      this.#children.set(key, child);
    }
    const bounds = this.#bounds;
    const target = child;
    return {
      observe(value: number): void {
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        target.counts[i]! += 1;
        target.sum += value;
        target.count += 1;
      },
    };
  }

  /** What prom-client's Registry renders: the same series, in the same form, as its own Histogram. */
  getForPromString() {
    type Value = {
      labels: Record<string, string | number>;
      sharedLabels: Readonly<Record<string, string>>;
      value: number;
      metricName: string;
    };
    const values: Value[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, counts, sum, count } of this.#children.values()) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += counts[i]!;
        values.push({ labels: { le }, sharedLabels: labels, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As JSON (`Registry.getMetricsAsJSON`): each value with all its labels, `le` last. */
  get() {
    const data = this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, ...rest }) => ({
        ...rest,
        labels: { ...sharedLabels, ...labels },
      })),
    };
  }

  reset(): void {
    this.#children.clear();
  }
}
