/**
 * Limits every JSON document the service accepts must respect, whether a client sent it or a peer
 * answered with it: at most MAX_JSON_DEPTH nested arrays and objects, no number that overflows to
 * Infinity, and no U+0000 in a string (PostgreSQL cannot store it). JSON.parse itself copes with any depth, but what happens to the value afterwards
 * (canonical fingerprints, JSON.stringify of responses and events) recurses and throws past a few
 * thousand levels, and JSON.stringify writes Infinity as `null`. Checking the text before parsing
 * keeps anything that cannot be served back from ever being stored.
 */

/**
 * Deepest nesting of arrays and objects in an accepted document, the document itself counted
 * (`{"a":[1]}` has depth 2). Real payloads stay far below it; every walk in the service survives
 * more than ten times as much.
 */
export const MAX_JSON_DEPTH = 128;

export type JsonTextProblem =
  | { readonly kind: 'too_deep'; readonly maxDepth: number }
  | { readonly kind: 'out_of_range'; readonly number: string }
  | { readonly kind: 'nul_character' }
  | { readonly kind: 'unpaired_surrogate' };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const LOWER_E = 0x65;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
/** Without an exponent, a number needs more digits than this to overflow a double. */
const SAFE_PLAIN_LENGTH = 300;

/**
 * The first limit `text` breaks, or undefined. It does not validate the JSON (the parser does), so
 * on malformed text it may report a problem or nothing. Linear in the text; most documents are
 * cleared by two cheap native searches and never walked character by character.
 */
export function jsonTextProblem(text: string, maxDepth = MAX_JSON_DEPTH): JsonTextProblem | undefined {
  if (hasNulEscape(text)) return { kind: 'nul_character' };
  if (hasUnpairedSurrogate(text)) return { kind: 'unpaired_surrogate' };
  if (!hasMoreOpeningBrackets(text, maxDepth) && !MAY_OVERFLOW.test(text)) return undefined;
  return scan(text, maxDepth);
}

/**
 * Whether a string or key holds U+0000, which JSON can only write as the escape `\u0000` (a raw
 * control character is invalid JSON). PostgreSQL's text and jsonb cannot hold it, so it is refused
 * on every store alike. An escaped backslash followed by `u0000` is ordinary text.
 */
function hasNulEscape(text: string): boolean {
  for (let i = text.indexOf('\\u0000'); i !== -1; i = text.indexOf('\\u0000', i + 1)) {
    let backslashes = 1;
    while (text.charCodeAt(i - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 1) return true;
  }
  return false;
}

/**
 * Numbers that might overflow: an exponent of three or more digits, or a run of 100 digits. Any
 * other number is below 10^99 · 10^99. Matches inside strings only cost a full scan.
 */
const MAY_OVERFLOW = /[eE][+-]?\d{3}|\d{100}/;

/** `\uD800`–`\uDFFF` escapes, any case. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/g;

/**
 * Whether a string or key holds half of a surrogate pair on its own (only possible as an escape:
 * UTF-8 cannot encode one). It is not Unicode text: stores that keep text as UTF-8 would turn
 * every one into U+FFFD, so that two different keys would read as the same one.
 */
function hasUnpairedSurrogate(text: string): boolean {
  if (!/\\u[dD][89a-fA-F]/.test(text)) return false;
  let pendingHigh = -1;
  for (const match of text.matchAll(SURROGATE_ESCAPE)) {
    const at = match.index;
    let backslashes = 1;
    while (text.charCodeAt(at - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) continue; // an escaped backslash followed by "uD8..": plain text
    const high = /[89abAB]/.test(match[0][3]!);
    if (pendingHigh >= 0 && (high || at !== pendingHigh + 6)) return true;
    if (high) pendingHigh = at;
    else if (pendingHigh < 0 || at !== pendingHigh + 6) return true;
    else pendingHigh = -1;
  }
  return pendingHigh >= 0;
}

/** Whether `text` holds more than `count` `{` and `[` (inside strings or not): depth can't exceed that. */
function hasMoreOpeningBrackets(text: string, count: number): boolean {
  let seen = 0;
  for (const bracket of ['{', '[']) {
    for (let i = text.indexOf(bracket); i !== -1; i = text.indexOf(bracket, i + 1)) {
      if (++seen > count) return true;
    }
  }
  return false;
}

/** One pass over the text, skipping strings, tracking depth and checking suspicious numbers. */
function scan(text: string, maxDepth: number): JsonTextProblem | undefined {
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = stringEnd(text, i);
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return { kind: 'too_deep', maxDepth };
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    else if (c === MINUS || (c >= ZERO && c <= NINE)) {
      const end = numberEnd(text, i);
      const problem = numberProblem(text, i, end);
      if (problem) return problem;
      i = end - 1;
    }
  }
  return undefined;
}

/** Index of the quote that closes the string opening at `start` (or the end of the text). */
function stringEnd(text: string, start: number): number {
  let i = start;
  for (;;) {
    i = text.indexOf('"', i + 1);
    if (i === -1) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return i;
  }
}

/** Index just past the number token starting at `start`. */
function numberEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && isNumberChar(text.charCodeAt(i))) i++;
  return i;
}

/** Digits, '.', '+', '-', 'e' and 'E'. */
function isNumberChar(c: number): boolean {
  return (c >= ZERO && c <= NINE) || c === 0x2e || c === 0x2b || c === MINUS || (c | 0x20) === LOWER_E;
}

/** Only a long number or one with an exponent can overflow; only those are converted. */
function numberProblem(text: string, start: number, end: number): JsonTextProblem | undefined {
  if (end - start <= SAFE_PLAIN_LENGTH) {
    let exponent = false;
    for (let i = start; i < end && !exponent; i++) exponent = (text.charCodeAt(i) | 0x20) === LOWER_E;
    if (!exponent) return undefined;
  }
  const token = text.slice(start, end);
  if (Math.abs(Number(token)) !== Number.POSITIVE_INFINITY) return undefined;
  return { kind: 'out_of_range', number: token.length > 40 ? `${token.slice(0, 37)}...` : token };
}
