/**
 * Storage behind a minimal interface. Every mutation is a decision taken against a consistent view
 * of one Run, holding what the decision declared it `Needs`, and committed atomically with its
 * events; implementations guarantee that decisions on the same Run never interleave. The memory
 * store is the default; a durable store implements the same interface and passes the same contract
 * suite (test/store/store-contract.ts).
 */
import type {
  Decision,
  EndedExecution,
  Needs,
  NodeRunRecord,
  RunEvent,
  RunRecord,
  RunState,
  RunView,
} from '../core/model.js';

export interface Store {
  /**
   * Runs `decide` against a consistent view of `runId` (which may not exist yet) holding `needs`,
   * and commits the changes it returns, with `seq` assigned to its events, as one atomic step. If
   * `decide` throws, nothing is written and the promise rejects with that error.
   */
  mutate<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  getNodeRun(nodeRunId: string): Promise<NodeRunRecord | undefined>;
  /** Run id of a NodeRun (a NodeRun never moves between Runs). */
  locate(nodeRunId: string): Promise<string | undefined>;
  /**
   * Number of Runs that have not finished; a shared store may answer from a count up to a second
   * old unless `fresh` is asked for.
   */
  countLiveRuns(options?: { fresh?: boolean }): Promise<number>;
  /** The Run as served (JSON), for reads that only pass it on. */
  runJson(runId: string): Promise<string | undefined>;
  /** The NodeRun as served (JSON), for reads that only pass it on. */
  nodeRunJson(nodeRunId: string): Promise<string | undefined>;
  /** The unfinished NodeRun whose composite executor holds the token with this SHA-256 (hex). */
  findAssignment(tokenHash: string): Promise<Assignment | undefined>;
  /** A page of a Run's event log; undefined when the Run does not exist. */
  events(runId: string, afterSeq: number, limit: number): Promise<EventPage | undefined>;
  /**
   * Runs newest first (by `started_at`, then `run_id`, both descending) that match `filter` and come
   * after `after` in that order, at most `limit`.
   */
  listRuns(filter: RunFilter, after: RunPosition | undefined, limit: number): Promise<ListedRun[]>;
  /** How many Runs match `filter`, in each state. */
  countRuns(filter: RunFilter): Promise<Record<RunState, number>>;
  /**
   * NodeRuns of a Run as served (JSON), ordered by id, after the id `after`, at most `limit`; only
   * `under` and its descendants when given. Undefined when the Run does not exist.
   */
  listNodeRuns(
    runId: string,
    options: { readonly after?: string; readonly limit: number; readonly under?: string },
  ): Promise<string[] | undefined>;
  /** An owed effect was carried out (or given up); a durable store forgets it. */
  effectDone(runId: string, effectId: string): Promise<void>;
  /** Calls `listener` after each commit that appends events to `runId`. Returns the unsubscribe. */
  subscribe(runId: string, listener: () => void): () => void;
  /** What a store shared by several processes offers to recover from any of them stopping. */
  readonly recovery?: Recovery;
  /**
   * Whether the store can serve, cheaply (for `/v1/health`): from what the store already knows, or
   * from a bounded check whose result is reused for a moment. Never rejects.
   */
  health(): Promise<StoreHealth>;
  close(): Promise<void>;
}

/** Which Runs a listing or a count covers; every given field must match. */
export interface RunFilter {
  readonly states?: readonly RunState[];
  readonly rootNodeTypeId?: string;
  /** `run_context.tenant_id`. */
  readonly tenantId?: string;
  /** Started at or after (epoch ms). */
  readonly startedFrom?: number;
  /** Started strictly before (epoch ms). */
  readonly startedBefore?: number;
}

/** A Run's place in the listing order. */
export interface RunPosition {
  /** `started_at`, epoch ms. */
  readonly startedAt: number;
  readonly runId: string;
}

export interface ListedRun {
  /** The Run as served (JSON). */
  readonly json: string;
  readonly rootNodeTypeId: string;
  readonly position: RunPosition;
}

/** A store's answer to `health()`; `details` never carries a password or a URL. */
export interface StoreHealth {
  readonly ok: boolean;
  /** Why it is not ok (or what it is), for operators. */
  readonly message?: string;
  readonly details?: Record<string, unknown>;
}

/** A NodeRun by its Run and its id. */
export interface NodeRunRef {
  readonly runId: string;
  readonly nodeRunId: string;
}

/**
 * Recovery from stopped processes, for stores that outlive them. A process holds the NodeRuns it
 * dispatches and the atomic executions it waits for through leases it renews; what is not held, and
 * what was owed but not done, any process can find and finish. Times are epoch milliseconds.
 */
export interface Recovery {
  /** Extends this process's lease, which covers every NodeRun it holds (and starts it, the first time). */
  renewLeases(): Promise<void>;
  /** Takes queued NodeRuns that nobody holds (their process stopped); this process dispatches them. */
  adoptQueued(limit: number): Promise<NodeRunRef[]>;
  /** Running atomic NodeRuns whose waiting process stopped renewing its lease. */
  lostExecutions(limit: number): Promise<NodeRunRef[]>;
  /** Running NodeRuns whose deadline is before `until`. */
  nodeRunDeadlines(until: number, limit: number): Promise<(NodeRunRef & { readonly at: number })[]>;
  /** Running Runs whose wall-time deadline is before `until`. */
  runDeadlines(until: number, limit: number): Promise<{ readonly runId: string; readonly at: number }[]>;
  /** Owed effects that are due, held by this process until it has tried them (or they are due again). */
  dueEffects(limit: number): Promise<(EndedExecution & { readonly attempts: number })[]>;
  /** Lets go of the queued NodeRuns this process holds, so that others dispatch them at once. */
  releaseQueued(): Promise<void>;
  /** Ends this process's lease: whatever it still holds is the others' to recover at once. */
  endLease(): Promise<void>;
  /** Deletes up to `limit` Runs that finished before `before`; returns how many it deleted. */
  sweep(before: number, limit: number): Promise<number>;
}

/** A NodeRun whose assignment token a composite executor holds. */
export interface Assignment {
  readonly runId: string;
  readonly nodeRunId: string;
}

/** An event of the log as served: its NDJSON line (without the newline). */
export interface LoggedEvent {
  readonly seq: number;
  readonly nodeRunId: string | undefined;
  /** Parent of `nodeRunId` (for NodeRun streams); undefined for the root and run-level events. */
  readonly parentId: string | undefined;
  readonly line: string;
}

export interface EventPage {
  /** Committed events with seq > afterSeq, in seq order, at most `limit`. */
  readonly events: readonly LoggedEvent[];
  /** Highest seq committed so far (0 when none). */
  readonly lastSeq: number;
  /** The Run is terminal. */
  readonly finished: boolean;
}

export interface CommittedDecision<T> extends Decision<T> {
  /** Events exactly as committed (with run_id and seq). */
  readonly committed: readonly RunEvent[];
  /**
   * Executions whose executor must be told to stop: NodeRuns the decision's cascade ended while they
   * were `running`, and those the decision asked to stop (`cancel_execution` effects). A durable store
   * records them in the same commit, and again offers those not marked done (`effectDone`).
   */
  readonly ended: readonly EndedExecution[];
}
