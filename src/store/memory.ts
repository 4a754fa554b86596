/**
 * The default store: everything in memory, no setup. A decision runs synchronously against the live
 * maps and its changes are applied in the same tick, so decisions on one Run can never interleave
 * and a commit is all-or-nothing. A cascade over many NodeRuns is prepared in slices across ticks
 * (other requests are served meanwhile; this Run's decisions wait and its readers see the state
 * before the commit) and applied in one tick. Finished Runs beyond `maxFinishedRuns` are evicted,
 * oldest first.
 */
import { cascadeTargets, endByCoordinator } from '../core/cascade.js';
import type {
  Cascade,
  Decision,
  Effect,
  EndedExecution,
  Needs,
  NodeRunRecord,
  RunEvent,
  RunRecord,
  RunState as RunStateName,
  RunView,
} from '../core/model.js';
import { committedDecision, committedEvent, isTerminal, RUN_STATES } from '../core/model.js';
import { EventHub } from './hub.js';
import { cachedJson } from './json-cache.js';
import type {
  Assignment,
  CommittedDecision,
  EventPage,
  ListedRun,
  LoggedEvent,
  RunFilter,
  RunPosition,
  Store,
  StoreHealth,
} from './store.js';

interface RunState {
  record: RunRecord | undefined;
  nodeRuns: Map<string, NodeRunRecord>;
  readonly events: RunEvent[];
  /** Each event's JSON line, made the first time it is read (index = seq - 1). */
  readonly lines: (string | undefined)[];
  /** `${parentId}\n${key}` → NodeRun id. */
  readonly idempotency: Map<string, string>;
  /** Parent id → child ids, in creation order (append-only). */
  readonly children: Map<string, string[]>;
  /** NodeRuns that are not terminal. */
  live: number;
}

/** A Run's place in the listing order, with the state it names (to tell a Run evicted since). */
interface Listed extends RunPosition {
  readonly state: RunState;
}

/** Listing order, ascending: older first, then lower run id. */
const before = (a: RunPosition, b: RunPosition) =>
  a.startedAt < b.startedAt || (a.startedAt === b.startedAt && a.runId < b.runId);

/** What a cascade ends: the new records, the executions to stop, and (when large) the rebuilt map. */
interface Ended {
  readonly records: readonly NodeRunRecord[];
  readonly executions: readonly EndedExecution[];
  readonly nodeRuns?: Map<string, NodeRunRecord>;
}

export interface MemoryStoreOptions {
  /** How many finished Runs to keep; older ones are evicted first. */
  readonly maxFinishedRuns: number;
  readonly onListenerError?: (error: unknown) => void;
  /** A finished Run was evicted to keep `maxFinishedRuns` (its root NodeRun named, for logs). */
  readonly onEvicted?: (runId: string, rootNodeRunId: string | undefined) => void;
  /** NodeRuns a cascade ends per event-loop turn before it yields (default 1,000). */
  readonly cascadeSlice?: number;
}

const NO_CHILDREN: readonly string[] = Object.freeze([]);
const NOTHING_ENDED: Ended = Object.freeze({ records: Object.freeze([]), executions: Object.freeze([]) });

/** The executions a commit stops: those its cascade ended, then those its effects cancel. */
function executionsToStop(
  effects: readonly Effect[] | undefined,
  ended: readonly EndedExecution[],
): readonly EndedExecution[] {
  let stops: EndedExecution[] | undefined;
  for (const effect of effects ?? []) {
    if (effect.type !== 'cancel_execution') continue;
    stops ??= [...ended];
    stops.push(effect.execution);
  }
  return stops ?? ended;
}
const idempotencySlot = (parentId: string, key: string) => `${parentId}\n${key}`;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class MemoryStore implements Store {
  readonly #runs = new Map<string, RunState>();
  /** NodeRun id → Run id, for every NodeRun held. */
  readonly #locations = new Map<string, string>();
  /** Finished Run ids in the order they finished (a Set keeps insertion order). */
  readonly #finished = new Set<string>();
  /** Assignment token hash → the NodeRun it was handed out for. */
  readonly #assignments = new Map<string, string>();
  /** Every Run held, in listing order; entries of evicted Runs are dropped now and then. */
  #listing: Listed[] = [];
  #evictedListed = 0;
  /** Runs whose commit is being prepared across turns; their next decision waits for it. */
  readonly #busy = new Map<string, Promise<void>>();
  readonly #hub: EventHub;
  readonly #maxFinishedRuns: number;
  readonly #cascadeSlice: number;
  readonly #onEvicted: MemoryStoreOptions['onEvicted'];

  /** Told how long each commit took, from its decision to its events being published (metrics). */
  readonly #commitObservers: ((seconds: number) => void)[] = [];

  constructor(options: MemoryStoreOptions) {
    this.#maxFinishedRuns = options.maxFinishedRuns;
    this.#onEvicted = options.onEvicted;
    this.#cascadeSlice = options.cascadeSlice ?? 1_000;
    this.#hub = new EventHub(options.onListenerError);
  }

  async mutate<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    for (let busy = this.#busy.get(runId); busy; busy = this.#busy.get(runId)) await busy;
    const started = this.#commitObservers.length > 0 ? performance.now() : undefined;
    const state = this.#runs.get(runId) ?? emptyState();
    const decision = decide(new MemoryRunView(runId, state, needs, this.#locations));
    const cascade = decision.changes?.cascade;
    let ended: Ended = NOTHING_ENDED;
    let release: (() => void) | undefined;
    try {
      if (cascade) {
        // Held from the decision to the commit, since preparing may take several turns.
        release = this.#hold(runId);
        ended = await this.#prepareCascade(state, cascade);
      }
      const committed = this.#apply(runId, state, decision, ended);
      if (committed.length > 0) this.#hub.publish(runId);
      const stops = executionsToStop(decision.effects, ended.executions);
      if (started !== undefined) {
        const seconds = (performance.now() - started) / 1000;
        for (const observe of this.#commitObservers) observe(seconds);
      }
      return committedDecision(decision, committed, stops);
    } finally {
      if (release) {
        this.#busy.delete(runId);
        release();
      }
    }
  }

  /** Registers an observer of the duration of every commit. */
  observeCommits(observer: { committed(seconds: number): void }): void {
    this.#commitObservers.push((seconds) => observer.committed(seconds));
  }

  /** Makes the Run's next decisions wait until the returned function is called. */
  #hold(runId: string): () => void {
    let release = () => {};
    this.#busy.set(runId, new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  /**
   * The records a cascade ends, prepared a slice per event-loop turn when there are many. Then the
   * Run's whole NodeRun map is rebuilt the same way, so that the commit itself swaps one map instead
   * of writing each record into the live one.
   */
  async #prepareCascade(state: RunState, cascade: Cascade): Promise<Ended> {
    const slice = this.#cascadeSlice;
    const records: NodeRunRecord[] = [];
    const executions: EndedExecution[] = [];
    const targets = cascadeTargets(
      cascade,
      (id) => state.nodeRuns.get(id),
      (id) => state.children.get(id) ?? NO_CHILDREN,
    );
    for (const target of targets) {
      records.push(endByCoordinator(target, cascade.reason, cascade.time));
      const { nodeRun } = target;
      if (nodeRun.state === 'running')
        executions.push({ runId: nodeRun.run_id, nodeRunId: nodeRun.node_run_id, kind: nodeRun.kind });
      if (records.length % slice === 0) await nextTurn();
    }
    if (records.length < slice) return { records, executions };
    const nodeRuns = new Map<string, NodeRunRecord>();
    let done = 0;
    for (const [id, record] of state.nodeRuns) {
      nodeRuns.set(id, record);
      if (++done % slice === 0) await nextTurn();
    }
    for (const record of records) {
      nodeRuns.set(record.nodeRun.node_run_id, record);
      if (++done % slice === 0) await nextTurn();
    }
    return { records, executions, nodeRuns };
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    return this.#runs.get(runId)?.record;
  }

  async getNodeRun(nodeRunId: string): Promise<NodeRunRecord | undefined> {
    const runId = this.#locations.get(nodeRunId);
    return runId === undefined ? undefined : this.#runs.get(runId)?.nodeRuns.get(nodeRunId);
  }

  async locate(nodeRunId: string): Promise<string | undefined> {
    return this.#locations.get(nodeRunId);
  }

  async countLiveRuns(): Promise<number> {
    return this.#runs.size - this.#finished.size;
  }

  async runJson(runId: string): Promise<string | undefined> {
    const record = this.#runs.get(runId)?.record;
    return record && cachedJson(record.run);
  }

  async nodeRunJson(nodeRunId: string): Promise<string | undefined> {
    const record = await this.getNodeRun(nodeRunId);
    return record && cachedJson(record.nodeRun);
  }

  async findAssignment(tokenHash: string): Promise<Assignment | undefined> {
    const nodeRunId = this.#assignments.get(tokenHash);
    if (nodeRunId === undefined) return undefined;
    const record = await this.getNodeRun(nodeRunId);
    if (!record || isTerminal(record.nodeRun.state)) return undefined;
    return { runId: record.nodeRun.run_id, nodeRunId };
  }

  async events(runId: string, afterSeq: number, limit: number): Promise<EventPage | undefined> {
    const state = this.#runs.get(runId);
    if (!state?.record) return undefined;
    const from = Math.max(0, afterSeq);
    const { events, lines } = state;
    const to = Math.min(events.length, from + limit);
    const page: LoggedEvent[] = [];
    for (let i = from; i < to; i++) {
      const event = events[i]!;
      const nodeRunId = event.node_run_id;
      const parentId =
        nodeRunId === undefined ? undefined : state.nodeRuns.get(nodeRunId)?.nodeRun.parent_node_run_id;
      let line = lines[i];
      if (line === undefined) {
        line = JSON.stringify(event);
        lines[i] = line;
      }
      page.push({ seq: event.seq, nodeRunId, parentId, line });
    }
    return {
      events: page,
      lastSeq: state.events.length,
      finished: isTerminal(state.record.run.state),
    };
  }

  async listRuns(filter: RunFilter, after: RunPosition | undefined, limit: number): Promise<ListedRun[]> {
    const listing = this.#listing;
    const found: ListedRun[] = [];
    // The first entry at or after `after` (or the end): everything below it comes after it, newest first.
    let i = after ? this.#firstNotBefore(after) - 1 : listing.length - 1;
    for (; i >= 0 && found.length < limit; i--) {
      const entry = listing[i]!;
      if (filter.startedFrom !== undefined && entry.startedAt < filter.startedFrom) break;
      if (filter.startedBefore !== undefined && entry.startedAt >= filter.startedBefore) continue;
      const { state } = entry;
      if (this.#runs.get(entry.runId) !== state || !state.record) continue;
      const rootNodeTypeId = this.#matches(state, filter);
      if (rootNodeTypeId === undefined) continue;
      found.push({
        json: cachedJson(state.record.run),
        rootNodeTypeId,
        position: { startedAt: entry.startedAt, runId: entry.runId },
      });
    }
    return found;
  }

  async countRuns(filter: RunFilter): Promise<Record<RunStateName, number>> {
    const counts = Object.fromEntries(RUN_STATES.map((state) => [state, 0])) as Record<RunStateName, number>;
    for (const entry of this.#listing) {
      const { state } = entry;
      if (this.#runs.get(entry.runId) !== state || !state.record) continue;
      if (filter.startedFrom !== undefined && entry.startedAt < filter.startedFrom) continue;
      if (filter.startedBefore !== undefined && entry.startedAt >= filter.startedBefore) continue;
      if (this.#matches(state, { ...filter, states: undefined }) !== undefined)
        counts[state.record.run.state]++;
    }
    return counts;
  }

  async listNodeRuns(
    runId: string,
    options: { readonly after?: string; readonly limit: number; readonly under?: string },
  ): Promise<string[] | undefined> {
    const state = this.#runs.get(runId);
    if (!state?.record) return undefined;
    let ids: string[];
    if (options.under === undefined) ids = [...state.nodeRuns.keys()];
    else {
      ids = state.nodeRuns.has(options.under) ? [options.under] : [];
      for (let i = 0; i < ids.length; i++) ids.push(...(state.children.get(ids[i]!) ?? NO_CHILDREN));
    }
    const after = options.after;
    return (after === undefined ? ids : ids.filter((id) => id > after))
      .sort()
      .slice(0, options.limit)
      .map((id) => cachedJson(state.nodeRuns.get(id)!.nodeRun));
  }

  /** The root's node type id when the Run matches the filter's state, tenant and root type. */
  #matches(state: RunState, filter: RunFilter): string | undefined {
    const run = state.record!.run;
    if (filter.states && !filter.states.includes(run.state)) return undefined;
    if (filter.tenantId !== undefined && run.run_context?.tenant_id !== filter.tenantId) return undefined;
    const rootNodeTypeId = state.nodeRuns.get(run.root_node_run_id)?.nodeRun.node_type_ref.node_type_id ?? '';
    if (filter.rootNodeTypeId !== undefined && rootNodeTypeId !== filter.rootNodeTypeId) return undefined;
    return rootNodeTypeId;
  }

  /** Index of the first listing entry that is not before `position`. */
  #firstNotBefore(position: RunPosition): number {
    let low = 0;
    let high = this.#listing.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (before(this.#listing[middle]!, position)) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** Adds a new Run to the listing; Runs mostly start in order, so this is mostly an append. */
  #list(runId: string, state: RunState, record: RunRecord): void {
    const startedAt = Date.parse(record.run.started_at ?? '') || 0;
    const entry: Listed = { startedAt, runId, state };
    const last = this.#listing.at(-1);
    if (!last || before(last, entry)) this.#listing.push(entry);
    else this.#listing.splice(this.#firstNotBefore(entry), 0, entry);
  }

  /** Nothing to forget: effects are only owed by this process. */
  async effectDone(): Promise<void> {}

  subscribe(runId: string, listener: () => void): () => void {
    return this.#hub.subscribe(runId, listener);
  }

  /** Memory is always there. */
  async health(): Promise<StoreHealth> {
    return { ok: true, details: { kind: 'memory' } };
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

  /** Applies a decision's changes; nothing here can fail halfway. */
  #apply<T>(runId: string, state: RunState, decision: Decision<T>, ended: Ended): RunEvent[] {
    const changes = decision.changes;
    if (!changes) return [];
    if (changes.run) {
      if (!state.record) {
        this.#runs.set(runId, state);
        this.#list(runId, state, changes.run);
      }
      state.record = changes.run;
    }
    if (ended.nodeRuns) state.nodeRuns = ended.nodeRuns;
    else for (const record of ended.records) state.nodeRuns.set(record.nodeRun.node_run_id, record);
    state.live -= ended.records.length;
    for (const record of changes.created ?? []) this.#add(runId, state, record);
    for (const record of changes.updated ?? []) {
      const id = record.nodeRun.node_run_id;
      const before = state.nodeRuns.get(id);
      if (!before) throw new Error(`decision updated NodeRun ${id}, which does not exist`);
      if (!isTerminal(before.nodeRun.state) && isTerminal(record.nodeRun.state)) state.live -= 1;
      state.nodeRuns.set(id, record);
      const tokenHash = record.assignmentTokenHash;
      if (tokenHash !== undefined && tokenHash !== before.assignmentTokenHash)
        this.#assignments.set(tokenHash, id);
    }
    const committed: RunEvent[] = [];
    for (const draft of changes.events ?? []) {
      const event = committedEvent(runId, state.events.length + 1, draft);
      state.events.push(event);
      committed.push(event);
    }
    if (changes.run && isTerminal(changes.run.run.state)) this.#finish(runId);
    return committed;
  }

  #add(runId: string, state: RunState, record: NodeRunRecord): void {
    const id = record.nodeRun.node_run_id;
    this.#locations.set(id, runId);
    state.nodeRuns.set(id, record);
    if (!isTerminal(record.nodeRun.state)) state.live += 1;
    const parentId = record.nodeRun.parent_node_run_id;
    if (parentId === undefined) return;
    const siblings = state.children.get(parentId);
    if (siblings) siblings.push(id);
    else state.children.set(parentId, [id]);
    const key = record.idempotency?.key;
    if (key !== undefined) state.idempotency.set(idempotencySlot(parentId, key), id);
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
    for (const [id, record] of state.nodeRuns) {
      this.#locations.delete(id);
      if (record.assignmentTokenHash !== undefined) this.#assignments.delete(record.assignmentTokenHash);
    }
    this.#runs.delete(runId);
    // The listing forgets evicted Runs in bulk, once they are half of it.
    if (++this.#evictedListed > this.#listing.length / 2) {
      this.#listing = this.#listing.filter((entry) => this.#runs.get(entry.runId) === entry.state);
      this.#evictedListed = 0;
    }
    this.#hub.publish(runId);
    try {
      this.#onEvicted?.(runId, state.record?.run.root_node_run_id);
    } catch {
      // An observer's failure never undoes a commit.
    }
  }
}

/**
 * A view that answers only what the decision declared it needs, so that a decision reading more
 * fails here as it would against a store that loads exactly its needs.
 */
class MemoryRunView implements RunView {
  readonly runId: string;
  readonly record: RunRecord | undefined;
  readonly #state: RunState;
  readonly #needs: Needs;
  readonly #locations: ReadonlyMap<string, string>;

  constructor(runId: string, state: RunState, needs: Needs, locations: ReadonlyMap<string, string>) {
    this.runId = runId;
    this.record = state.record;
    this.#state = state;
    this.#needs = needs;
    this.#locations = locations;
  }

  #declared(id: string): void {
    if (!this.#needs.nodeRuns?.includes(id))
      throw new Error(`decision read NodeRun ${id} without declaring it`);
  }

  nodeRun(id: string): NodeRunRecord | undefined {
    this.#declared(id);
    return this.#state.nodeRuns.get(id);
  }

  locate(id: string): string | undefined {
    this.#declared(id);
    return this.#locations.get(id);
  }

  nodeRunCount(): number {
    return this.#state.nodeRuns.size;
  }

  liveNodeRunCount(): number {
    return this.#state.live;
  }

  idempotent(parentId: string, key: string): NodeRunRecord | undefined {
    const idempotency = this.#needs.idempotency;
    if (idempotency?.parentId !== parentId || !idempotency.keys.includes(key))
      throw new Error(`decision read idempotency key ${key} without declaring it`);
    const id = this.#state.idempotency.get(idempotencySlot(parentId, key));
    return id === undefined ? undefined : this.#state.nodeRuns.get(id);
  }
}

function emptyState(): RunState {
  return {
    record: undefined,
    nodeRuns: new Map(),
    events: [],
    lines: [],
    idempotency: new Map(),
    children: new Map(),
    live: 0,
  };
}
