/**
 * Canonical JSON: object keys sorted at every level, so two payloads that mean the same thing give the
 * same string. Used to decide whether a retried request is identical to the one already recorded.
 * Values come from parsed JSON; deeper than any document the service accepts, the walk stops with a
 * 400 instead of running out of stack.
 */
import { MAX_JSON_DEPTH } from '../contract/json-limits.js';
import { ArpError } from '../errors.js';

export function canonicalJson(value: unknown): string {
  return canonical(value, 0);
}

function canonical(value: unknown, depth: number): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (depth >= MAX_JSON_DEPTH) {
    throw new ArpError(
      'invalid_request',
      `Request nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`,
      {
        details: { max_depth: MAX_JSON_DEPTH },
      },
    );
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += `${i > 0 ? ',' : ''}${canonical(value[i], depth + 1)}`;
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  // Object.keys' array is this call's own: sorted in place, and built into the string directly.
  const keys = Object.keys(record).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(key)}:${canonical(item, depth + 1)}`;
    first = false;
  }
  return `${out}}`;
}
