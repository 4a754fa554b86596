/**
 * Recursive walks of the core over client data stop with a coded 400 past the depth the service
 * accepts, never with a stack overflow, whatever reaches them.
 */
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../src/contract/json-limits.js';
import { canonicalJson } from '../../src/core/canonical.js';
import { ArpError } from '../../src/errors.js';
import { nestedJson } from '../helpers/nested.js';

describe('canonicalJson on hostile values', () => {
  it('throws invalid_request, not RangeError, for a value nested 20,000 levels', () => {
    const value = JSON.parse(nestedJson(20_000));
    let thrown: unknown;
    try {
      canonicalJson(value);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ArpError);
    expect(thrown).toMatchObject({ code: 'invalid_request', details: { max_depth: MAX_JSON_DEPTH } });
  });

  it('fingerprints the deepest accepted document, and nothing deeper', () => {
    const deepest = nestedJson(MAX_JSON_DEPTH - 1, '{"b":1,"a":2}');
    expect(canonicalJson(JSON.parse(deepest))).toBe(nestedJson(MAX_JSON_DEPTH - 1, '{"a":2,"b":1}'));
    expect(() => canonicalJson(JSON.parse(nestedJson(MAX_JSON_DEPTH + 1)))).toThrow(ArpError);
  });

  it('sorts keys at every level', () => {
    expect(canonicalJson({ b: [{ d: 1, c: 2 }], a: null, skip: undefined })).toBe(
      '{"a":null,"b":[{"c":2,"d":1}]}',
    );
  });
});
