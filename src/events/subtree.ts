/**
 * Membership in "this NodeRun or one of its descendants", for a NodeRun's event stream, memoised
 * per stream (a NodeRun never changes parent). A line carries its NodeRun's parent, which settles
 * nearly every case from what the stream has already seen; the rest (a stream that starts after
 * the ancestors' own events) walks up the tree through the store once.
 */
import type { Store } from '../store/store.js';
import type { EventLine } from './lines.js';

export class SubtreeFilter {
  readonly #known: Map<string, boolean>;

  constructor(rootId: string) {
    this.#known = new Map([[rootId, true]]);
  }

  /** True or false when known without the store; undefined when `resolve` must be awaited first. */
  verdict(line: Pick<EventLine, 'nodeRunId' | 'parentId'>): boolean | undefined {
    const id = line.nodeRunId;
    if (id === undefined) return false;
    const known = this.#known.get(id);
    if (known !== undefined) return known;
    const verdict = line.parentId === undefined ? false : this.#known.get(line.parentId);
    if (verdict !== undefined) this.#known.set(id, verdict);
    return verdict;
  }

  /** Walks up from the line's NodeRun until an ancestor with a known verdict (or the root). */
  async resolve(store: Store, line: EventLine): Promise<void> {
    const path: string[] = [];
    let verdict: boolean | undefined;
    for (let id = line.nodeRunId; id !== undefined; ) {
      verdict = this.#known.get(id);
      if (verdict !== undefined) break;
      path.push(id);
      id = (await store.getNodeRun(id))?.nodeRun.parent_node_run_id;
    }
    for (const id of path) this.#known.set(id, verdict ?? false);
  }
}
