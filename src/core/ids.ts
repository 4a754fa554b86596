/** Identifier rules: what we generate, and what we accept from clients. */
import { randomFillSync } from 'node:crypto';
import { ArpError } from '../errors.js';

export interface IdGenerator {
  runId(): string;
  nodeRunId(): string;
}

/** 128 random bits as 32 hex digits, cut from a pool filled 256 ids at a time. */
const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
let pooled = POOL_IDS;
function randomHex(): string {
  if (pooled === POOL_IDS) {
    randomFillSync(pool);
    pooled = 0;
  }
  const start = 16 * pooled++;
  return pool.toString('hex', start, start + 16);
}

/** `run_<32 hex>` and `node_run_<32 hex>`: URL-safe and free of `:`, like the reference services. */
export const randomIds: IdGenerator = {
  runId: () => `run_${randomHex()}`,
  nodeRunId: () => `node_run_${randomHex()}`,
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
