/** Node Registry: `GET /v1/node-types/{id}?version=`, with a small cache (node types are versioned). */
import type { NodeType, NodeTypeRef } from '../gen/contract.js';
import type { ServiceClient } from './http.js';

export interface NodeRegistryOptions {
  /** How long an answer (found or not found) is reused. */
  readonly cacheTtlMs: number;
  /** Most cached answers kept. */
  readonly cacheSize?: number;
  readonly now?: () => number;
}

interface Entry {
  readonly at: number;
  readonly value: Promise<NodeType | undefined>;
  settled: boolean;
  nodeType: NodeType | undefined;
}

const cacheKey = (ref: NodeTypeRef) => `${ref.node_type_id}\n${ref.version}`;

export class NodeRegistryClient {
  readonly #cache = new Map<string, Entry>();
  readonly #ttl: number;
  readonly #size: number;
  readonly #now: () => number;

  constructor(
    readonly http: ServiceClient,
    options: NodeRegistryOptions,
  ) {
    this.#ttl = options.cacheTtlMs;
    this.#size = options.cacheSize ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** The NodeType, or undefined when the registry does not know it (404). Errors are not cached. */
  getNodeType(ref: NodeTypeRef): Promise<NodeType | undefined> {
    const key = cacheKey(ref);
    const hit = this.#cache.get(key);
    if (hit && this.#now() - hit.at < this.#ttl) return hit.value;
    const entry: Entry = { at: this.#now(), value: this.#fetch(ref), settled: false, nodeType: undefined };
    entry.value.then(
      (nodeType) => {
        entry.settled = true;
        entry.nodeType = nodeType;
      },
      () => {
        if (this.#cache.get(key) === entry) this.#cache.delete(key);
      },
    );
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    if (this.#cache.size > this.#size) this.#cache.delete(this.#cache.keys().next().value as string);
    return entry.value;
  }

  /**
   * What the registry already answered for this type, without waiting: `found` with the NodeType,
   * `unknown` after a 404, `pending` when no fresh answer is at hand (a lookup is then started).
   */
  peek(ref: NodeTypeRef): { state: 'found'; nodeType: NodeType } | { state: 'unknown' | 'pending' } {
    const hit = this.#cache.get(cacheKey(ref));
    if (!hit || this.#now() - hit.at >= this.#ttl) {
      this.getNodeType(ref).catch(() => {});
      return { state: 'pending' };
    }
    if (!hit.settled) return { state: 'pending' };
    return hit.nodeType ? { state: 'found', nodeType: hit.nodeType } : { state: 'unknown' };
  }

  async #fetch(ref: NodeTypeRef): Promise<NodeType | undefined> {
    const query = new URLSearchParams({ version: ref.version });
    const { status, body } = await this.http.call<NodeType>({
      method: 'GET',
      operation: 'get_node_type',
      path: `/v1/node-types/${encodeURIComponent(ref.node_type_id)}?${query}`,
      responseSchema: 'NodeType',
      safeToRetry: true,
      acceptStatuses: [404],
    });
    return status === 404 ? undefined : body;
  }
}
