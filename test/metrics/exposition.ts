/**
 * A small parser of the Prometheus text exposition format, enough for the service's own output:
 * `# HELP`/`# TYPE` lines are skipped, each sample is `name{label="value",...} value`.
 */
import { expect } from 'vitest';
import type { TestApp } from '../helpers/app.js';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(LABEL)) {
      labels[key!] = raw!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const rawValue = match[3]!;
    const value = rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : Number(rawValue);
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** Samples of one scrape, looked up by name and exact label set. */
export class Scrape {
  readonly samples: readonly Sample[];
  constructor(text: string) {
    this.samples = parseExposition(text);
  }
  /** The sample with exactly these labels; 0 when the series does not exist (yet). */
  value(name: string, labels: Record<string, string> = {}): number {
    const keys = Object.keys(labels);
    const found = this.samples.filter(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).length === keys.length &&
        keys.every((k) => s.labels[k] === labels[k]),
    );
    if (found.length > 1) throw new Error(`several samples of ${name} ${JSON.stringify(labels)}`);
    return found[0]?.value ?? 0;
  }
  /** Whether any sample of this metric exists. */
  has(name: string): boolean {
    return this.samples.some((s) => s.name === name);
  }
}

/** GET /metrics through the app (with optional headers), expecting 200 and the text format. */
export async function scrape(t: TestApp, headers: Record<string, string> = {}): Promise<Scrape> {
  const res = await t.request({ method: 'GET', url: '/metrics', headers });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return new Scrape(res.body);
}
