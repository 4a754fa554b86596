/**
 * The coordinator's state as the pure core sees it: wire objects (exactly as served) plus the
 * bookkeeping that never goes on the wire. Records are immutable; a change replaces the record.
 */
import type { ConstraintEnvelope, NodeKind, NodeRun, Run, RunEvent, RunEventType } from '../gen/contract.js';

export type { ConstraintEnvelope, NodeKind, NodeRun, Run, RunEvent, RunEventType };

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
}

/** An event as the core emits it; the store assigns `run_id` and `seq` when it commits. */
export interface EventDraft {
  readonly type: RunEventType;
  readonly time: string;
  readonly node_run_id?: string;
  readonly data?: Record<string, unknown>;
  readonly extensions?: Record<string, unknown>;
}

/** Read-only view of one Run and everything in it, consistent for the duration of one decision. */
export interface RunView {
  readonly runId: string;
  readonly record: RunRecord | undefined;
  nodeRun(nodeRunId: string): NodeRunRecord | undefined;
  /** Run id of any NodeRun the coordinator holds, in this Run or another one. */
  locate(nodeRunId: string): string | undefined;
  nodeRunCount(): number;
  /** The NodeRun created under `parentId` with this idempotency key, if any. */
  idempotent(parentId: string, key: string): NodeRunRecord | undefined;
  /** Highest seq committed so far (0 when none). */
  lastSeq(): number;
  /** Committed events with seq > afterSeq, in seq order, at most `limit`. */
  events(afterSeq: number, limit: number): readonly RunEvent[];
  /** Every NodeRun of this Run, in creation order. */
  nodeRuns(): Iterable<NodeRunRecord>;
  /**
   * Ids of the direct children of a NodeRun, in creation order. Kept by the store (children are
   * only ever added), so that adding a child never copies its siblings.
   */
  children(nodeRunId: string): readonly string[];
}

/** What a decision commits, atomically, in one step. */
export interface Changes {
  readonly run?: RunRecord;
  readonly nodeRuns?: readonly NodeRunRecord[];
  readonly events?: readonly EventDraft[];
}

/** Work the shell does after a decision is committed. */
export type Effect =
  | { readonly type: 'dispatch'; readonly nodeRunId: string }
  | { readonly type: 'cancel_execution'; readonly nodeRun: NodeRun }
  | { readonly type: 'arm_deadline'; readonly runId: string; readonly at: number }
  | { readonly type: 'disarm_deadline'; readonly runId: string };

export interface Decision<T> {
  readonly value: T;
  readonly changes?: Changes;
  readonly effects?: readonly Effect[];
}

export const TERMINAL_STATES = new Set<string>(['succeeded', 'failed', 'canceled']);
export const isTerminal = (state: string): boolean => TERMINAL_STATES.has(state);
