/** Helpers that keep wire objects free of absent fields: an absent value is omitted, never null. */

/**
 * Returns `base` with the defined entries of `extensions` set only when there is at least one. The
 * entries are copied rather than deleted from `extensions`: deleting a key turns an object into a
 * slow dictionary that every later read and serialisation of the wire object pays for.
 */
export function withExtensions<T extends object>(base: T, extensions: Record<string, unknown>): T {
  let kept: Record<string, unknown> | undefined;
  for (const key in extensions) {
    const value = extensions[key];
    if (value === undefined) continue;
    kept ??= {};
    kept[key] = value;
  }
  return kept ? { ...base, extensions: kept } : base;
}

/**
 * `values` without its undefined entries. Callers pass a fresh literal, which is answered as it is
 * when every entry is defined: a copy built key by key keeps only four fields in the object itself
 * and the rest in a separate property array.
 */
export function defined<T extends Record<string, unknown>>(values: T): Partial<T> {
  let complete = true;
  for (const key in values) {
    if (values[key] === undefined) {
      complete = false;
      break;
    }
  }
  if (complete) return values;
  const out: Record<string, unknown> = {};
  for (const key in values) {
    const value = values[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Partial<T>;
}
