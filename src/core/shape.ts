/** Helpers that keep wire objects free of absent fields: an absent value is omitted, never null. */

/** Returns `base` with `extensions` set only when there is at least one key. */
export function withExtensions<T extends object>(base: T, extensions: Record<string, unknown>): T {
  for (const key of Object.keys(extensions)) if (extensions[key] === undefined) delete extensions[key];
  return Object.keys(extensions).length > 0 ? { ...base, extensions } : base;
}

/** Copies the defined entries of `values` onto a new object. */
export function defined<T extends Record<string, unknown>>(values: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(values)) if (values[key] !== undefined) out[key] = values[key];
  return out as Partial<T>;
}
