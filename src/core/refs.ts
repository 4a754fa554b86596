/**
 * One shared, frozen object per plain node type ref. Every NodeRun keeps its ref for as long as it is
 * held, and a parsed request brings a fresh object and two fresh strings each time: a coordinator
 * holding a million NodeRuns of a few hundred types would otherwise hold a million copies.
 */
import type { NodeTypeRef } from '../gen/contract.js';

/** Distinct refs kept; past this the table starts again (refs are cheap to re-intern). */
const MAX_SHARED = 10_000;
const shared = new Map<string, Map<string, NodeTypeRef>>();
let size = 0;

/**
 * The shared equal of `ref` when it is exactly `{node_type_id, version}` (in that order, so that it is
 * served as it was sent); `ref` itself otherwise (extensions, or another key order).
 */
export function sharedNodeTypeRef(ref: NodeTypeRef): NodeTypeRef {
  let keys = 0;
  for (const key in ref) {
    if (key !== (keys === 0 ? 'node_type_id' : 'version') || ++keys > 2) return ref;
  }
  if (keys !== 2) return ref;
  const { node_type_id: id, version } = ref;
  let versions = shared.get(id);
  const known = versions?.get(version);
  if (known) return known;
  if (size >= MAX_SHARED) {
    shared.clear();
    size = 0;
    versions = undefined;
  }
  if (!versions) {
    versions = new Map();
    shared.set(id, versions);
  }
  const frozen = Object.freeze({ node_type_id: id, version });
  versions.set(version, frozen);
  size++;
  return frozen;
}
