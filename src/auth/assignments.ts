/**
 * Assignment tokens: the opaque bearer token the coordinator hands a composite executor in
 * `:begin`. It is bound to that NodeRun, lets the executor make exactly the callbacks a composite
 * executor makes (create children under it, read, evaluate and complete it and its descendants),
 * and stops working when the NodeRun is terminal. Only a hash of each token is kept.
 */
import { createHash } from 'node:crypto';

export interface Assignment {
  readonly runId: string;
  readonly nodeRunId: string;
}

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

export class AssignmentRegistry {
  readonly #byHash = new Map<string, Assignment>();
  readonly #hashByNodeRun = new Map<string, string>();

  /** Binds a token (given as its hash) to a NodeRun, replacing any earlier token of that NodeRun. */
  issue(tokenHash: string, assignment: Assignment): void {
    this.revoke(assignment.nodeRunId);
    this.#byHash.set(tokenHash, assignment);
    this.#hashByNodeRun.set(assignment.nodeRunId, tokenHash);
  }

  lookup(token: string): Assignment | undefined {
    if (this.#byHash.size === 0) return undefined;
    return this.#byHash.get(hashToken(token));
  }

  /** The NodeRun finished: its token stops working. */
  revoke(nodeRunId: string): void {
    const hash = this.#hashByNodeRun.get(nodeRunId);
    if (hash === undefined) return;
    this.#hashByNodeRun.delete(nodeRunId);
    this.#byHash.delete(hash);
  }

  get size(): number {
    return this.#byHash.size;
  }
}
