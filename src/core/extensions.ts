/**
 * The `rc.` extension namespace belongs to the coordinator: it records its bookkeeping there
 * (`rc.completion_error`, `rc.constraints`, ...). A client that could write those keys could forge
 * that bookkeeping, so requests that carry them are rejected.
 */
import { ArpError } from '../errors.js';

export const RESERVED_EXTENSION_PREFIX = 'rc.';

/** One `extensions` object of a request and its JSON pointer, e.g. `/node_runs/0/extensions`. */
export type ExtensionsAt = readonly [path: string, extensions: Record<string, unknown> | undefined];

/** 400 when any of the given `extensions` objects uses a key of the coordinator's namespace. */
export function rejectReservedExtensions(...places: readonly ExtensionsAt[]): void {
  const errors: { path: string; message: string }[] = [];
  for (const [path, extensions] of places) {
    if (!extensions) continue;
    for (const key of Object.keys(extensions)) {
      if (key.startsWith(RESERVED_EXTENSION_PREFIX)) {
        errors.push({
          path: `${path}/${key}`,
          message: `the '${RESERVED_EXTENSION_PREFIX}' extension namespace is reserved for the coordinator`,
        });
      }
    }
  }
  if (errors.length > 0) {
    throw new ArpError('invalid_request', 'Request uses extension keys reserved for the coordinator', {
      details: { errors },
    });
  }
}
