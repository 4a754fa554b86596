/**
 * Matches concrete URLs against the contract's path templates, to tell "no such path" (404) from
 * "path exists, wrong method" (405) and to keep `GET /v1/runs/{id}:cancel` from reading as a run id.
 */
import type { OperationSpec } from '../contract/contract.js';

export interface PathMatcher {
  /** Methods the contract defines for this URL path (empty when the path is unknown). */
  allowedMethods(path: string): string[];
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function pathMatcher(operations: readonly OperationSpec[]): PathMatcher {
  const patterns = operations.map((op) => ({
    method: op.method,
    regex: new RegExp(
      `^${op.path
        .split(/(\{\w+\})/)
        .map((part) => (part.startsWith('{') ? '[^/:]+' : escapeRegex(part)))
        .join('')}$`,
    ),
  }));
  return {
    allowedMethods(path) {
      let decoded = path;
      try {
        decoded = decodeURIComponent(path);
      } catch {}
      return patterns.filter((p) => p.regex.test(decoded)).map((p) => p.method);
    },
  };
}

/** Fastify route syntax for an OpenAPI path: a `:` after a parameter needs a regex-bounded param. */
export function toFastifyPath(path: string): string {
  return path.replace(/\{(\w+)\}:(\w+)/g, ':$1(^[^:/]+)::$2').replace(/\{(\w+)\}/g, ':$1');
}
