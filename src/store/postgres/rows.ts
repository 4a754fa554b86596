/** Rows of the PostgreSQL store ↔ the core's records. */
import type { NodeRunRecord, RunRecord } from '../../core/model.js';
import type { ConstraintEnvelope, NodeRun, Run } from '../../gen/contract.js';

export interface RunRow {
  readonly run_id: string;
  readonly doc: Run;
  readonly constraints: ConstraintEnvelope | null;
  readonly start_fingerprint: string;
  readonly deadline_at: string | number | null;
  readonly steps: number;
}

export interface LockedRunRow extends RunRow {
  readonly node_run_count: number;
  readonly live_count: number;
  readonly last_seq: string | number;
}

export interface NodeRunRow {
  readonly run_id: string;
  readonly node_run_id: string;
  readonly doc: NodeRun;
  readonly depth: number;
  readonly constraints: ConstraintEnvelope | null;
  readonly child_count: number;
  readonly rounds: number;
  readonly idempotency_key: string | null;
  readonly idempotency_fingerprint: string | null;
  readonly completion_fingerprint: string | null;
  readonly ended_by_coordinator: boolean;
  readonly assignment_token_hash: string | null;
  readonly deadline_at: string | number | null;
}

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value);
const epochMs = (value: string | number | null) => (value === null ? undefined : Number(value));

export function runRecord(row: RunRow): RunRecord {
  return {
    run: row.doc,
    constraints: orUndefined(row.constraints),
    startFingerprint: row.start_fingerprint,
    deadlineAt: epochMs(row.deadline_at),
    steps: row.steps,
  };
}

export function nodeRunRecord(row: NodeRunRow): NodeRunRecord {
  const record: NodeRunRecord = {
    nodeRun: row.doc,
    depth: row.depth,
    constraints: orUndefined(row.constraints),
    childCount: row.child_count,
    rounds: row.rounds,
    idempotency:
      row.idempotency_key === null
        ? undefined
        : { key: row.idempotency_key, fingerprint: row.idempotency_fingerprint ?? '' },
    completionFingerprint: orUndefined(row.completion_fingerprint),
    endedByCoordinator: row.ended_by_coordinator,
  };
  const deadlineAt = epochMs(row.deadline_at);
  return {
    ...record,
    ...(row.assignment_token_hash === null ? {} : { assignmentTokenHash: row.assignment_token_hash }),
    ...(deadlineAt === undefined ? {} : { deadlineAt }),
  };
}

/** The row a record is stored as (the inverse of `nodeRunRecord`). */
export function nodeRunRow(runId: string, record: NodeRunRecord): NodeRunRow {
  return {
    run_id: runId,
    node_run_id: record.nodeRun.node_run_id,
    doc: record.nodeRun,
    depth: record.depth,
    constraints: record.constraints ?? null,
    child_count: record.childCount,
    rounds: record.rounds,
    idempotency_key: record.idempotency?.key ?? null,
    idempotency_fingerprint: record.idempotency?.fingerprint ?? null,
    completion_fingerprint: record.completionFingerprint ?? null,
    ended_by_coordinator: record.endedByCoordinator,
    assignment_token_hash: record.assignmentTokenHash ?? null,
    deadline_at: record.deadlineAt ?? null,
  };
}
