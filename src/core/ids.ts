/** Identifier rules: what we generate, and what we accept from clients. */
import { randomFillSync } from 'node:crypto';
import { ArpError } from '../errors.js';

export interface IdGenerator {
  runId(): string;
  nodeRunId(): string;
}

/** 128 random bits per id, cut from a pool filled 256 ids at a time. */
const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
let pooled = POOL_IDS;
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * `prefix` followed by 32 hex digits of fresh random bits, written into one buffer and read out as
 * one string. Concatenating a prefix with a hex string would make a two-part (cons) string that is
 * flattened into a third one the first time it is hashed as a map key, for every id the store keeps.
 */
function randomId(scratch: Buffer, prefixLength: number): string {
  if (pooled === POOL_IDS) {
    randomFillSync(pool);
    pooled = 0;
  }
  const start = 16 * pooled++;
  let at = prefixLength;
  for (let i = start; i < start + 16; i++) {
    const byte = pool[i]!;
    scratch[at++] = HEX[byte >> 4]!;
    scratch[at++] = HEX[byte & 15]!;
  }
  return scratch.toString('latin1', 0, at);
}

/** A buffer holding `prefix`, with room for the hex digits after it. */
const withPrefix = (prefix: string) => {
  const buffer = Buffer.alloc(prefix.length + 32);
  buffer.write(prefix, 'latin1');
  return buffer;
};
const runIds = withPrefix('run_');
const nodeRunIds = withPrefix('node_run_');

/** `run_<32 hex>` and `node_run_<32 hex>`: URL-safe and free of `:`, like the reference services. */
export const randomIds: IdGenerator = {
  runId: () => randomId(runIds, 4),
  nodeRunId: () => randomId(nodeRunIds, 9),
};

/** Longest client id, in UTF-16 code units (JavaScript string length). */
export const MAX_CLIENT_ID_LENGTH = 256;
// `/` and `:` would break the URL space (`/v1/runs/{run_id}:cancel`); whitespace and control
// characters make ids that cannot be typed or logged safely.
const FORBIDDEN = /[/:\s\p{Cc}]/u;
// With the `u` flag a surrogate pair is one code point; only an unpaired surrogate is `Cs`.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Rejects a client-supplied id that cannot be used safely in our URL space: every id accepted here
 * must be addressable on every route by any URL client.
 */
export function assertClientId(field: string, id: string): void {
  const problem =
    id.length === 0
      ? 'must not be empty'
      : id.length > MAX_CLIENT_ID_LENGTH
        ? `must be at most ${MAX_CLIENT_ID_LENGTH} characters`
        : FORBIDDEN.test(id)
          ? 'must not contain "/", ":", whitespace or control characters'
          : // URL clients resolve `.` and `..` (even percent-encoded) as dot segments.
            id === '.' || id === '..'
            ? 'must not be "." or ".."'
            : // A lone surrogate has no UTF-8 form, so no URL can carry it.
              LONE_SURROGATE.test(id)
              ? 'must not contain unpaired surrogates'
              : undefined;
  if (problem) {
    throw new ArpError('invalid_request', `${field} ${problem}`, {
      details: { errors: [{ path: `/${field}`, message: problem }] },
    });
  }
}

/** Node kind from a `atomic.` / `composite.` id prefix, the fallback when no registry knows the type. */
export function kindFromPrefix(nodeTypeId: string): 'atomic' | 'composite' | undefined {
  const lower = nodeTypeId.toLowerCase();
  if (lower.startsWith('atomic.')) return 'atomic';
  if (lower.startsWith('composite.')) return 'composite';
  return undefined;
}
