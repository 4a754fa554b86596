/**
 * The one table of codes: every failure code the coordinator records is in FAILURE_CODES and is
 * documented in the README, and no code is in two tables.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, FAILURE_CODES, failure, TERMINATION_CODES } from '../src/errors.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('error codes', () => {
  it('every failure code has a message and is documented in the README', () => {
    for (const [code, message] of Object.entries(FAILURE_CODES)) {
      expect(message.length, code).toBeGreaterThan(0);
      expect(readme, `README mentions ${code}`).toContain(`\`${code}\``);
    }
  });

  it('no code means two things', () => {
    const codes = [
      ...Object.keys(ERROR_STATUS),
      ...Object.keys(TERMINATION_CODES),
      ...Object.keys(FAILURE_CODES),
    ];
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('failure() gives the table message unless a precise one is given, and details only when given', () => {
    expect(failure('unknown_node_kind')).toEqual({
      code: 'unknown_node_kind',
      message: FAILURE_CODES.unknown_node_kind,
    });
    expect(failure('node_run_timeout', 'late', { timeout_ms: 5 })).toEqual({
      code: 'node_run_timeout',
      message: 'late',
      details: { timeout_ms: 5 },
    });
  });
});
