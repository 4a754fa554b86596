/** Parsing `Authorization: Bearer <token>` exactly as the reference services split it. */
import { describe, expect, it } from 'vitest';
import { bearerToken } from '../../src/auth/hooks.js';

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def.ghi', 'abc.def.ghi'],
    ['bearer abc', 'abc'],
    ['BEARER abc', 'abc'],
    ['Bearer  abc', 'abc'],
    ['Bearer\tabc', 'abc'],
    ['  Bearer abc  ', 'abc'],
  ])('%j → %j', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });

  it.each([
    ['Bearer'],
    ['Bearer '],
    ['Bearer a b'],
    ['Bearer a\tb'],
    ['Basic abc'],
    ['Bearerabc'],
    [''],
    ['abc'],
  ])('%j is malformed', (header) => {
    expect(bearerToken(header)).toBeUndefined();
  });
});
