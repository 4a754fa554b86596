/**
 * The default store: everything in memory, no setup. A decision runs synchronously against the live
 * maps and its changes are applied in the same tick, so decisions on one Run can never interleave
 * and a commit is all-or-nothing. Finished Runs beyond `maxFinishedRuns` are evicted, oldest first.
 */
import type { Decision, NodeRunRecord, RunEvent, RunRecord, RunView } from '../core/model.js';
import { isTerminal } from '../core/model.js';
import { EventHub } from '../events/hub.js';
import type { CommittedDecision, Store } from './store.js';

interface RunState {
  record: RunRecord | undefined;
  readonly nodeRuns: Map<string, NodeRunRecord>;
  readonly events: RunEvent[];
  /** `${parentId}\n${key}` → NodeRun id. */
  readonly idempotency: Map<string, string>;
  /** Parent id → child ids, in creation order (append-only). */
  readonly children: Map<string, string[]>;
}

export interface MemoryStoreOptions {
  /** How many finished Runs to keep; older ones are evicted first. */
  readonly maxFinishedRuns: number;
  readonly onListenerError?: (error: unknown) => void;
}

const NO_CHILDREN: readonly string[] = Object.freeze([]);
const idempotencySlot = (parentId: string, key: string) => `${parentId}\n${key}`;

export class MemoryStore implements Store {
  readonly #runs = new Map<string, RunState>();
  /** NodeRun id → Run id, for every NodeRun held. */
  readonly #locations = new Map<string, string>();
  /** Finished Run ids in the order they finished (a Map keeps insertion order). */
  readonly #finished = new Set<string>();
  readonly #hub: EventHub;
  readonly #maxFinishedRuns: number;

  constructor(options: MemoryStoreOptions) {
    this.#maxFinishedRuns = options.maxFinishedRuns;
    this.#hub = new EventHub(options.onListenerError);
  }

  async mutate<T>(runId: string, decide: (view: RunView) => Decision<T>): Promise<CommittedDecision<T>> {
    const state = this.#runs.get(runId) ?? emptyState();
    const decision = decide(this.#view(runId, state));
    const committed = this.#apply(runId, state, decision);
    if (committed.length > 0) this.#hub.publish(runId);
    return { ...decision, committed };
  }

  async read<T>(runId: string, read: (view: RunView) => T): Promise<T> {
    return read(this.#view(runId, this.#runs.get(runId) ?? emptyState()));
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    return this.#runs.get(runId)?.record;
  }

  async getNodeRun(nodeRunId: string): Promise<NodeRunRecord | undefined> {
    const runId = this.#locations.get(nodeRunId);
    return runId === undefined ? undefined : this.#runs.get(runId)?.nodeRuns.get(nodeRunId);
  }

  async countLiveRuns(): Promise<number> {
    return this.#runs.size - this.#finished.size;
  }

  async locate(nodeRunId: string): Promise<string | undefined> {
    return this.#locations.get(nodeRunId);
  }

  subscribe(runId: string, listener: () => void): () => void {
    return this.#hub.subscribe(runId, listener);
  }

  async close(): Promise<void> {}

  /** Numbers for diagnostics and tests. */
  stats() {
    return {
      runs: this.#runs.size,
      nodeRuns: this.#locations.size,
      finishedRuns: this.#finished.size,
      /** Runs with at least one live event subscriber (open follow streams). */
      subscribedRuns: this.#hub.activeRuns,
    };
  }

  #view(runId: string, state: RunState): RunView {
    const locations = this.#locations;
    return {
      runId,
      record: state.record,
      nodeRun: (id) => state.nodeRuns.get(id),
      locate: (id) => locations.get(id),
      nodeRunCount: () => state.nodeRuns.size,
      idempotent: (parentId, key) => {
        const id = state.idempotency.get(idempotencySlot(parentId, key));
        return id === undefined ? undefined : state.nodeRuns.get(id);
      },
      lastSeq: () => state.events.length,
      events: (afterSeq, limit) => state.events.slice(Math.max(0, afterSeq), Math.max(0, afterSeq) + limit),
      nodeRuns: () => state.nodeRuns.values(),
      children: (id) => state.children.get(id) ?? NO_CHILDREN,
    };
  }

  /** Applies a decision's changes; nothing here can fail halfway. */
  #apply<T>(runId: string, state: RunState, decision: Decision<T>): RunEvent[] {
    const changes = decision.changes;
    if (!changes) return [];
    if (changes.run) {
      if (!state.record) this.#runs.set(runId, state);
      state.record = changes.run;
    }
    for (const record of changes.nodeRuns ?? []) {
      const id = record.nodeRun.node_run_id;
      if (!state.nodeRuns.has(id)) {
        this.#locations.set(id, runId);
        const key = record.idempotency?.key;
        const parentId = record.nodeRun.parent_node_run_id;
        if (parentId !== undefined) {
          const siblings = state.children.get(parentId);
          if (siblings) siblings.push(id);
          else state.children.set(parentId, [id]);
          if (key !== undefined) state.idempotency.set(idempotencySlot(parentId, key), id);
        }
      }
      state.nodeRuns.set(id, record);
    }
    const committed: RunEvent[] = [];
    for (const draft of changes.events ?? []) {
      const event: RunEvent = { run_id: runId, seq: state.events.length + 1, ...draft };
      state.events.push(event);
      committed.push(event);
    }
    if (changes.run && isTerminal(changes.run.run.state)) this.#finish(runId);
    return committed;
  }

  #finish(runId: string): void {
    this.#finished.add(runId);
    while (this.#finished.size > this.#maxFinishedRuns) {
      const oldest = this.#finished.values().next().value as string;
      this.#finished.delete(oldest);
      this.#evict(oldest);
    }
  }

  #evict(runId: string): void {
    const state = this.#runs.get(runId);
    if (!state) return;
    for (const id of state.nodeRuns.keys()) this.#locations.delete(id);
    this.#runs.delete(runId);
    this.#hub.publish(runId);
  }
}

function emptyState(): RunState {
  return { record: undefined, nodeRuns: new Map(), events: [], idempotency: new Map(), children: new Map() };
}
