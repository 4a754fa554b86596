/** Colour rules and the small formatting functions behind the tables, trees and event lines. */
import { describe, expect, it } from 'vitest';
import { coloured, duration, eventSummary, plain, styleFor, table } from '../../src/cli/render.js';

describe('colour', () => {
  it('is used only for a terminal, and never when NO_COLOR is set to anything but empty', () => {
    expect(styleFor(true, {})).toBe(coloured);
    expect(styleFor(true, { NO_COLOR: '' })).toBe(coloured);
    expect(styleFor(true, { NO_COLOR: '1' })).toBe(plain);
    expect(styleFor(false, {})).toBe(plain);
    expect(styleFor(undefined, {})).toBe(plain);
  });

  it('does not shift table columns', () => {
    const rows = [
      [coloured.state('failed'), 'x'],
      [coloured.state('succeeded'), 'y'],
    ];
    expect(table(['STATE', 'ID'], rows, plain)).toBe(
      ['STATE      ID', '\x1b[31mfailed\x1b[0m     x', '\x1b[32msucceeded\x1b[0m  y'].join('\n'),
    );
  });
});

describe('durations', () => {
  const from = '2026-01-01T00:00:00.000Z';
  const plus = (ms: number) => new Date(Date.parse(from) + ms).toISOString();
  it.each([
    [850, '850ms'],
    [12_340, '12.3s'],
    [245_000, '4m05s'],
    [7_380_000, '2h03m'],
  ])('%i ms is %s', (ms, text) => {
    expect(duration(from, plus(ms))).toBe(text);
  });
  it('is "-" for what has not ended', () => {
    expect(duration(from, undefined)).toBe('-');
    expect(duration(undefined, from)).toBe('-');
  });
});

describe('event summaries', () => {
  it('are key=value pairs, objects as JSON, cut to the line', () => {
    expect(eventSummary({ state: 'failed', reason: { code: 'x' }, n: 2 })).toBe(
      'state=failed reason={"code":"x"} n=2',
    );
    expect(eventSummary({ text: 'a'.repeat(200) }, 20)).toBe(`text=${'a'.repeat(14)}…`);
    expect(eventSummary(undefined)).toBe('');
  });
});
