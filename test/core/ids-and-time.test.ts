import { describe, expect, it } from 'vitest';
import { randomIds } from '../../src/core/ids.js';
import { isoTime } from '../../src/core/time.js';

describe('generated ids', () => {
  it('are the prefix and 32 lowercase hex digits, all distinct across several refills of the random pool', () => {
    const runIds = new Set<string>();
    const nodeRunIds = new Set<string>();
    // 1,000 of each: the pool holds 256 ids, so it is refilled several times, between the two kinds too.
    for (let i = 0; i < 1_000; i++) {
      const runId = randomIds.runId();
      const nodeRunId = randomIds.nodeRunId();
      expect(runId).toMatch(/^run_[0-9a-f]{32}$/);
      expect(nodeRunId).toMatch(/^node_run_[0-9a-f]{32}$/);
      runIds.add(runId);
      nodeRunIds.add(nodeRunId.slice('node_run_'.length));
    }
    expect(runIds.size).toBe(1_000);
    expect(nodeRunIds.size).toBe(1_000);
    // The hex of the two kinds comes from disjoint slices of the pool.
    for (const runId of runIds) expect(nodeRunIds.has(runId.slice('run_'.length))).toBe(false);
  });

  it('use every hex digit in every position over many ids (no digit table error)', () => {
    const seen = Array.from({ length: 32 }, () => new Set<string>());
    for (let i = 0; i < 2_000; i++) {
      const hex = randomIds.nodeRunId().slice('node_run_'.length);
      for (let p = 0; p < 32; p++) seen[p]!.add(hex[p]!);
    }
    // 2,000 draws per position: a digit missing by chance has probability below 16 * (15/16)^2000.
    for (const digits of seen) expect([...digits].sort().join('')).toBe('0123456789abcdef');
  });
});

describe('isoTime', () => {
  it('answers what toISOString answers, for repeated and changing milliseconds', () => {
    const times = [0, 0, 1, 1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_001, 253_402_300_799_999, -1];
    for (const ms of times) expect(isoTime(new Date(ms))).toBe(new Date(ms).toISOString());
  });

  it('throws on an invalid date, as toISOString does', () => {
    isoTime(new Date(5));
    expect(() => isoTime(new Date(Number.NaN))).toThrow(RangeError);
  });
});
