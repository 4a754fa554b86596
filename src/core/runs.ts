/**
 * Pure decisions about Runs: start (idempotent on identical retry) and termination (cancel, budget
 * expiry), including the cascade that ends every unfinished NodeRun of the Run. Both read nothing
 * but the Run's record.
 */

import { ArpError, runNotFound, TERMINATION_CODES, type TerminationCode } from '../errors.js';
import type { NodeKind, RunStartRequest } from '../gen/contract.js';
import { canonicalJson } from './canonical.js';
import { mergeConstraints } from './constraints.js';
import { type PolicyRecord, policyEvent } from './dispatch.js';
import {
  type Decision,
  type Effect,
  type EventDraft,
  EXT,
  isTerminal,
  type Needs,
  type NodeRunRecord,
  type Run,
  type RunView,
} from './model.js';
import { sharedNodeTypeRef } from './refs.js';
import { defined, withExtensions } from './shape.js';
import { isoTime } from './time.js';

/** Starting and ending a Run read only its record. */
export const RUN_ONLY: Needs = Object.freeze({});

export interface StartRunInput {
  readonly request: RunStartRequest;
  readonly runId: string;
  readonly rootNodeRunId: string;
  readonly rootKind: NodeKind | undefined;
  readonly now: Date;
  /** Wall-time budget given to a Run whose constraints set none. */
  readonly defaultMaxWallTimeMs?: number;
  /** Set when no new Run may start (the live-Run cap); an identical retry is still answered. */
  readonly full?: { readonly limit: number };
  /** A `run.start` allow known before the start (no PDP), recorded with it. */
  readonly policy?: PolicyRecord;
  /**
   * The Run's context when it differs from the request's (the caller's trace recorded in it). The
   * start's fingerprint stays that of the request, so a retry in another trace is the same start.
   */
  readonly runContext?: RunStartRequest['run_context'];
  /**
   * The Run's id was generated for this start (the request named none). No later request can be a
   * retry of it, since repeating the request starts another Run, so no fingerprint is computed.
   */
  readonly idGenerated?: boolean;
}

/** The start fingerprint of a Run whose id was generated: equal to no canonical request. */
const NO_FINGERPRINT = '';

/** The Run's own constraints, with the default wall-time budget when it sets none. */
function runConstraints(input: StartRunInput) {
  const merged = mergeConstraints(input.request.constraints);
  const wallTime = input.defaultMaxWallTimeMs;
  if (wallTime === undefined || merged?.budgets?.max_wall_time_ms !== undefined) return merged;
  return { ...merged, budgets: { ...merged?.budgets, max_wall_time_ms: wallTime } };
}

export function decideStartRun(view: RunView, input: StartRunInput): Decision<Run> {
  const { request, runId, rootNodeRunId, rootKind, now } = input;
  const fingerprint = input.idGenerated ? NO_FINGERPRINT : canonicalJson(request);
  if (view.record) {
    if (fingerprint !== NO_FINGERPRINT && view.record.startFingerprint === fingerprint)
      return { value: view.record.run };
    throw new ArpError('run_already_exists', `Run '${runId}' already exists with a different request`, {
      details: { run_id: runId },
    });
  }
  if (input.full) {
    throw new ArpError('service_unavailable', 'Too many unfinished Runs; retry later', {
      details: { limit: input.full.limit },
      retryable: true,
    });
  }
  const time = isoTime(now);
  const constraints = runConstraints(input);
  const run: Run = withExtensions(
    defined({
      run_id: runId,
      state: 'running',
      root_node_run_id: rootNodeRunId,
      run_context: input.runContext ?? request.run_context,
      started_at: time,
    }) as Run,
    { ...request.extensions, [EXT.constraints]: constraints, [EXT.metadata]: request.metadata },
  );
  const root = withExtensions(
    defined({
      node_run_id: rootNodeRunId,
      run_id: runId,
      node_type_ref: sharedNodeTypeRef(request.root_node_type_ref),
      kind: rootKind,
      state: 'queued',
      created_at: time,
      inputs: request.input,
    }) as NodeRunRecord['nodeRun'],
    { [EXT.constraints]: constraints },
  );
  const wallTime = constraints?.budgets?.max_wall_time_ms;
  const deadlineAt = wallTime === undefined ? undefined : now.getTime() + wallTime;
  const effects: Effect[] = [{ type: 'dispatch', nodeRunId: rootNodeRunId }];
  if (deadlineAt !== undefined) effects.push({ type: 'arm_deadline', runId, at: deadlineAt });
  return {
    value: run,
    changes: {
      run: { run, constraints, startFingerprint: fingerprint, deadlineAt, steps: 0 },
      created: [newNodeRunRecord(root, 0, constraints)],
      events: [
        { type: 'run_started', time, data: { root_node_run_id: rootNodeRunId } },
        { type: 'node_run_assigned', time, node_run_id: rootNodeRunId, data: { root: true } },
        ...(input.policy ? [policyEvent(rootNodeRunId, input.policy, time)] : []),
      ],
    },
    effects,
  };
}

export function newNodeRunRecord(
  nodeRun: NodeRunRecord['nodeRun'],
  depth: number,
  constraints: NodeRunRecord['constraints'],
  idempotency?: NodeRunRecord['idempotency'],
): NodeRunRecord {
  return {
    nodeRun,
    depth,
    constraints,
    childCount: 0,
    rounds: 0,
    idempotency,
    completionFingerprint: undefined,
    endedByCoordinator: false,
  };
}

export interface TerminateRunInput {
  readonly now: Date;
  /** `canceled` for cancel_run; `failed` when a budget ran out. */
  readonly state: 'canceled' | 'failed';
  readonly reason: TerminationCode;
  readonly detail?: Record<string, unknown>;
}

/**
 * Makes a Run terminal and ends every unfinished NodeRun in it. Idempotent: a Run that is already
 * terminal is returned unchanged.
 */
export function decideTerminateRun(view: RunView, input: TerminateRunInput): Decision<Run> {
  const record = view.record;
  if (!record) throw runNotFound(view.runId);
  if (isTerminal(record.run.state)) return { value: record.run };
  const time = isoTime(input.now);
  const run: Run = { ...record.run, state: input.state, ended_at: time };
  if (input.state === 'failed') {
    run.extensions = {
      ...record.run.extensions,
      [EXT.completionError]: defined({
        code: input.reason,
        message: TERMINATION_CODES[input.reason],
        details: input.detail,
      }),
    };
  }
  const event: EventDraft = {
    type: 'run_completed',
    time,
    data: {
      state: input.state,
      reason: input.reason,
      // Every unfinished NodeRun is below the root, so the cascade from the root ends them all.
      canceled_node_run_count: view.liveNodeRunCount(),
      ...input.detail,
    },
  };
  return {
    value: run,
    changes: {
      run: { ...record, run },
      cascade: { from: record.run.root_node_run_id, inclusive: true, reason: input.reason, time },
      events: [event],
    },
    effects: [{ type: 'disarm_deadline', runId: record.run.run_id }],
  };
}
