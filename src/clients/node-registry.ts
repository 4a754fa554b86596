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

export class NodeRegistryClient {
  readonly #cache = new Map<string, { at: number; value: Promise<NodeType | undefined> }>();
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
    const key = `${ref.node_type_id}\n${ref.version}`;
    const hit = this.#cache.get(key);
    if (hit && this.#now() - hit.at < this.#ttl) return hit.value;
    const value = this.#fetch(ref);
    this.#cache.delete(key);
    this.#cache.set(key, { at: this.#now(), value });
    value.catch(() => this.#cache.delete(key));
    if (this.#cache.size > this.#size) this.#cache.delete(this.#cache.keys().next().value as string);
    return value;
  }

  async #fetch(ref: NodeTypeRef): Promise<NodeType | undefined> {
    const query = new URLSearchParams({ version: ref.version });
    const { status, body } = await this.http.call<NodeType>({
      method: 'GET',
      path: `/v1/node-types/${encodeURIComponent(ref.node_type_id)}?${query}`,
      responseSchema: 'NodeType',
      safeToRetry: true,
      acceptStatuses: [404],
    });
    return status === 404 ? undefined : body;
  }
}
