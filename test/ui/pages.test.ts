/** Hash routes, list filters and formatting of the inspector (ui/src/routes.ts, ui/src/format.ts). */
import { describe, expect, it } from 'vitest';
import {
  elapsed,
  formatDuration,
  formatTime,
  isoToLocalInput,
  localInputToIso,
  summarise,
} from '../../ui/src/format.js';
import { filterParams, parseRoute, runHash, runsHash } from '../../ui/src/routes.js';

describe('routes', () => {
  it('reads the list with its filters, and a Run by its percent-encoded id', () => {
    expect(parseRoute('')).toEqual({ page: 'runs', filters: { state: [] } });
    expect(parseRoute('#/runs?state=running,failed,bogus&tenant_id=t1&root_node_type_id=')).toEqual({
      page: 'runs',
      filters: { state: ['running', 'failed'], tenant_id: 't1' },
    });
    const id = 'run with ?#% and é';
    expect(parseRoute(runHash(id))).toEqual({ page: 'run', runId: id });
    expect(parseRoute('#/runs/%E0%A4%A')).toEqual({ page: 'not_found', hash: '#/runs/%E0%A4%A' });
    expect(parseRoute('#/elsewhere')).toEqual({ page: 'not_found', hash: '#/elsewhere' });
  });

  it('leaves in-page anchors alone', () => {
    expect(parseRoute('#main')).toBeUndefined();
  });

  it('writes filters back as the listing API and the hash take them', () => {
    const filters = {
      state: ['queued', 'running'] as const,
      tenant_id: 't 1',
      started_after: '2026-01-01T00:00:00.000Z',
    };
    expect(filterParams({ ...filters, state: [...filters.state] }).toString()).toBe(
      'state=queued%2Crunning&tenant_id=t+1&started_after=2026-01-01T00%3A00%3A00.000Z',
    );
    expect(filterParams({ ...filters, state: [...filters.state] }, false).has('state')).toBe(false);
    const hash = runsHash({ ...filters, state: [...filters.state] });
    expect(parseRoute(hash)).toEqual({ page: 'runs', filters: { ...filters, state: ['queued', 'running'] } });
    expect(runsHash({ state: [] })).toBe('#/runs');
  });
});

describe('format', () => {
  it('writes durations at a readable precision', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(1234)).toBe('1.2 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
    expect(formatDuration(7_440_000)).toBe('2 h 04 min');
    expect(formatDuration(-1)).toBe('—');
  });

  it('measures from start to end, or to now while running', () => {
    const now = Date.parse('2026-01-01T00:00:10.000Z');
    expect(elapsed(undefined, undefined, now)).toBeUndefined();
    expect(elapsed('2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.500Z', now)).toEqual({
      text: '1.5 s',
      running: false,
    });
    expect(elapsed('2026-01-01T00:00:00.000Z', undefined, now)).toEqual({ text: '10 s', running: true });
  });

  it('shows times in UTC and round-trips datetime-local values', () => {
    expect(formatTime('2026-01-01T12:00:03.250Z')).toBe('2026-01-01 12:00:03 UTC');
    expect(formatTime(undefined)).toBe('—');
    const iso = '2026-03-04T05:06:07.000Z';
    expect(localInputToIso(isoToLocalInput(iso))).toBe(iso);
    expect(localInputToIso('')).toBeUndefined();
    expect(localInputToIso('not a time')).toBeUndefined();
  });

  it('cuts long event data', () => {
    expect(summarise({ a: 'x'.repeat(200) }, 20)).toHaveLength(20);
    expect(summarise(undefined)).toBe('');
  });
});
