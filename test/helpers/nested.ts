/**
 * JSON texts nested to an exact depth, built as text so that depths far beyond what any recursive
 * walk survives (JSON.stringify included) can be sent.
 */

/**
 * JSON text of exactly `levels` nested containers, objects and arrays in turn (the outermost is an
 * object), around `leaf`.
 */
export function nestedJson(levels: number, leaf = '"leaf"'): string {
  const open: string[] = [];
  const close: string[] = [];
  for (let level = 0; level < levels; level++) {
    open.push(level % 2 === 0 ? '{"k":' : '[');
    close.push(level % 2 === 0 ? '}' : ']');
  }
  return `${open.join('')}${leaf}${close.reverse().join('')}`;
}

/** Containers of the deepest path in a parsed JSON value (0 for a scalar), without recursion. */
export function depthOf(value: unknown): number {
  let deepest = 0;
  const pending: [unknown, number][] = [[value, 0]];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') {
      deepest = Math.max(deepest, depth);
      continue;
    }
    const children = Object.values(node);
    if (children.length === 0) deepest = Math.max(deepest, depth + 1);
    for (const child of children) pending.push([child, depth + 1]);
  }
  return deepest;
}
