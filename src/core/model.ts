/**
 * The coordinator's state as the pure core sees it: wire objects (exactly as served) plus the
 * bookkeeping that never goes on the wire. Records are immutable; a change replaces the record.
 */
import type { TerminationCode } from '../errors.js';
import type {
  ConstraintEnvelope,
  NodeKind,
  NodeRun,
  Run,
  RunEvent,
  RunEventType,
  RunState,
} from '../gen/contract.js';

export const RUN_STATES: readonly RunState[] = ['queued', 'running', 'succeeded', 'failed', 'canceled'];

export type { ConstraintEnvelope, NodeKind, NodeRun, Run, RunEvent, RunEventType, RunState };

/** The namespace of every extension key the coordinator writes. */
export const EXT = {
  completionError: 'rc.completion_error',
  constraints: 'rc.constraints',
  idempotencyKey: 'rc.idempotency_key',
  candidateSetId: 'rc.candidate_set_id',
  bindingDecision: 'rc.binding_decision',
  metadata: 'rc.metadata',
  requestedExecutorInstanceId: 'rc.requested_executor_instance_id',
} as const;

export interface RunRecord {
  readonly run: Run;
  /** The Run's own constraints (from the start request), after normalisation. */
  readonly constraints: ConstraintEnvelope | undefined;
  /** Canonical form of the start request, to recognise an identical retry. */
  readonly startFingerprint: string;
  /** Absolute deadline (epoch ms) from `budgets.max_wall_time_ms`, if any. */
  readonly deadlineAt: number | undefined;
  /** Atomic NodeRuns dispatched to an executor so far (counted against `budgets.max_steps`). */
  readonly steps: number;
}

export interface NodeRunRecord {
  readonly nodeRun: NodeRun;
  /** Root is 0. */
  readonly depth: number;
  /** Effective constraints: the Run's merged with every ancestor's and the creating spec's. */
  readonly constraints: ConstraintEnvelope | undefined;
  /** Number of direct children, in any state. */
  readonly childCount: number;
  /** Calls to create_node_runs that created at least one child under this NodeRun. */
  readonly rounds: number;
  /** Idempotency key and canonical spec, for children created with a key. */
  readonly idempotency: { readonly key: string; readonly fingerprint: string } | undefined;
  /** Canonical form of the accepted `:complete` body, to recognise an identical repeat. */
  readonly completionFingerprint: string | undefined;
  /** True when the coordinator ended this NodeRun (cancel, cascade, budget), not a worker. */
  readonly endedByCoordinator: boolean;
  /** SHA-256 (hex) of the assignment token handed to the composite executor running it. */
  readonly assignmentTokenHash?: string;
  /** Absolute deadline (epoch ms) of a running composite: its executor must complete it by then. */
  readonly deadlineAt?: number;
}

/** An event as the core emits it; the store assigns `run_id` and `seq` when it commits. */
export interface EventDraft {
  readonly type: RunEventType;
  readonly time: string;
  readonly node_run_id?: string;
  readonly data?: Record<string, unknown>;
  readonly extensions?: Record<string, unknown>;
}

/**
 * What a decision reads besides its Run's record (always loaded). A store loads exactly this, so a
 * decision costs the same in a Run of ten NodeRuns as in a Run of ten thousand.
 */
export interface Needs {
  /** NodeRuns read by id (an id that belongs to another Run is only `locate`d). */
  readonly nodeRuns?: readonly string[];
  /** NodeRuns looked up by idempotency key under one parent. */
  readonly idempotency?: { readonly parentId: string; readonly keys: readonly string[] };
}

/** Read-only view of one Run, consistent for the duration of one decision, holding what it `Needs`. */
export interface RunView {
  readonly runId: string;
  readonly record: RunRecord | undefined;
  /** A NodeRun of this Run named in `Needs.nodeRuns` (undefined when it is not in this Run). */
  nodeRun(nodeRunId: string): NodeRunRecord | undefined;
  /** Run id of a NodeRun named in `Needs.nodeRuns`, in this Run or another one. */
  locate(nodeRunId: string): string | undefined;
  /** NodeRuns in this Run, in any state. */
  nodeRunCount(): number;
  /** NodeRuns in this Run that are not terminal. */
  liveNodeRunCount(): number;
  /** The NodeRun created under `parentId` with this key (as named in `Needs.idempotency`). */
  idempotent(parentId: string, key: string): NodeRunRecord | undefined;
}

/**
 * Ends every unfinished NodeRun below `from` (and `from` itself when `inclusive`) on the coordinator's
 * authority: `canceled`, `ended_at = time`, `rc.completion_error = {code: reason}`. A store applies it
 * without the decision loading the subtree (see `endByCoordinator`). Unfinished NodeRuns only ever
 * have unfinished ancestors, so the walk never needs to enter a finished NodeRun.
 */
export interface Cascade {
  readonly from: string;
  readonly inclusive: boolean;
  readonly reason: TerminationCode;
  readonly time: string;
}

/** What a decision commits, atomically, in one step. */
export interface Changes {
  readonly run?: RunRecord;
  /** New NodeRuns. */
  readonly created?: readonly NodeRunRecord[];
  /** New versions of NodeRuns named in `Needs.nodeRuns`. */
  readonly updated?: readonly NodeRunRecord[];
  readonly cascade?: Cascade;
  readonly events?: readonly EventDraft[];
}

/**
 * The event a store commits from a draft: `run_id` and `seq` first, then the draft's fields in wire
 * order, absent ones omitted. Built field by field rather than by spreading the draft (drafts come
 * in many shapes, and a spread over many shapes is a slow generic copy), and as one literal in the
 * common cases: fields added to an object after its literal go to a separate property array, one
 * more object per event for as long as the event is held.
 */
export function committedEvent(runId: string, seq: number, draft: EventDraft): RunEvent {
  const { type, time, node_run_id, data } = draft;
  if (draft.extensions === undefined && data !== undefined) {
    return node_run_id === undefined
      ? { run_id: runId, seq, type, time, data }
      : { run_id: runId, seq, type, time, node_run_id, data };
  }
  const event: RunEvent = { run_id: runId, seq, type, time };
  if (node_run_id !== undefined) event.node_run_id = node_run_id;
  if (data !== undefined) event.data = data;
  if (draft.extensions !== undefined) event.extensions = draft.extensions;
  return event;
}

/**
 * A committed decision: the decision's own fields copied one by one, for the same reason as in
 * `committedEvent` (decisions of different kinds have different shapes).
 */
export function committedDecision<T>(
  decision: Decision<T>,
  committed: readonly RunEvent[],
  ended: readonly EndedExecution[],
): Decision<T> & { readonly committed: readonly RunEvent[]; readonly ended: readonly EndedExecution[] } {
  return { value: decision.value, changes: decision.changes, effects: decision.effects, committed, ended };
}

/** A NodeRun the coordinator ended while an executor had it: the executor is told to stop. */
export interface EndedExecution {
  readonly runId: string;
  readonly nodeRunId: string;
  readonly kind: NodeKind | undefined;
  /** The store's record of this owed effect, when it keeps one (see `Store.effectDone`). */
  readonly effectId?: string;
}

/** Work the shell does after a decision is committed. */
export type Effect =
  | { readonly type: 'dispatch'; readonly nodeRunId: string }
  | { readonly type: 'cancel_execution'; readonly execution: EndedExecution }
  | { readonly type: 'arm_deadline'; readonly runId: string; readonly at: number }
  | { readonly type: 'disarm_deadline'; readonly runId: string };

export interface Decision<T> {
  readonly value: T;
  readonly changes?: Changes;
  readonly effects?: readonly Effect[];
}

export const TERMINAL_STATES = new Set<string>(['succeeded', 'failed', 'canceled']);
export const isTerminal = (state: string): boolean => TERMINAL_STATES.has(state);
