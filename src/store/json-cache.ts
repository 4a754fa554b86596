/**
 * Serialised JSON of immutable wire objects, computed once per object. Records are replaced on
 * every change, so an entry can never go stale, and the WeakMap lets it go with its object. This
 * makes the hot `GET /v1/node-runs/{id}` (which composite executors poll) a lookup.
 */
const cache = new WeakMap<object, string>();

export function cachedJson(value: object): string {
  let json = cache.get(value);
  if (json === undefined) {
    json = JSON.stringify(value);
    cache.set(value, json);
  }
  return json;
}
