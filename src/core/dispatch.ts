/**
 * Pure decisions of the dispatch path: recording policy decisions, claiming a queued NodeRun for
 * an executor (exactly once; atomic executions count against `max_steps`), and recording what the
 * executor said.
 */

import { failure, TERMINATION_CODES } from '../errors.js';
import type { AtomicExecuteResult, ExecutorBinding, NodeKind, PolicyDecision } from '../gen/contract.js';
import { type CompletionOutcome, completeRecord, decideFail, type ErrorDetail } from './completion.js';
import { type Decision, type EventDraft, isTerminal, type NodeRun, type RunView } from './model.js';
import { defined } from './shape.js';
import { isoTime } from './time.js';

export type PolicyAction = 'run.start' | 'node.run.execute';

export interface PolicyRecord {
  readonly action: PolicyAction;
  readonly decision: PolicyDecision;
}

export function policyEvent(nodeRunId: string, policy: PolicyRecord, time: string): EventDraft {
  const { decision } = policy;
  return {
    type: 'policy_decided',
    time,
    node_run_id: nodeRunId,
    data: defined({
      action: policy.action,
      decision: decision.decision,
      reason_code: decision.reason_code,
      message: decision.message,
      approval_ref: decision.approval_ref,
    }),
  };
}

const denied = (policy: PolicyRecord): ErrorDetail => ({
  ...failure(
    'policy_denied',
    policy.action === 'run.start' ? 'Run start denied by policy' : 'NodeRun denied by policy',
  ),
  details: defined({
    action: policy.action,
    decision: policy.decision.decision,
    reason_code: policy.decision.reason_code,
    message: policy.decision.message,
  }),
});

/**
 * Records a policy decision about an unfinished NodeRun; anything but `allow` fails it with
 * `policy_denied` (`require_approval` too: there is no approval workflow). The value says whether
 * the NodeRun may go on.
 */
export function decidePolicy(
  view: RunView,
  nodeRunId: string,
  policy: PolicyRecord,
  now: Date,
): Decision<boolean> {
  const record = view.nodeRun(nodeRunId);
  const run = view.record;
  // The NodeRun or its Run ended while the decision was pending: a late decision is not recorded.
  if (!record || !run || isTerminal(record.nodeRun.state) || isTerminal(run.run.state)) {
    return { value: false };
  }
  const time = isoTime(now);
  const event = policyEvent(nodeRunId, policy, time);
  if (policy.decision.decision === 'allow') return { value: true, changes: { events: [event] } };
  const failed = decideFail(view, nodeRunId, denied(policy), now, [event]);
  return { ...failed, value: false };
}

export interface ClaimInput {
  readonly nodeRunId: string;
  readonly kind: NodeKind;
  readonly binding: ExecutorBinding;
  readonly now: Date;
  /** The `node.run.execute` decision, recorded in the same step. */
  readonly policy?: PolicyRecord;
  /** A reason the shell found not to run it (no executor for its kind, no public URL...). */
  readonly refuse?: ErrorDetail;
  readonly assignmentTokenHash?: string;
  /** For a composite: when its executor must have completed it (epoch ms). */
  readonly deadlineAt?: number;
}

export type ClaimOutcome = 'claimed' | 'skipped' | 'failed';

/**
 * `queued → running`, bound to an executor: the single point that makes dispatch exactly-once.
 * A NodeRun that is no longer queued, or whose Run has finished, is skipped.
 */
export function decideClaim(view: RunView, input: ClaimInput): Decision<ClaimOutcome> {
  const record = view.nodeRun(input.nodeRunId);
  const run = view.record;
  if (!record || !run || record.nodeRun.state !== 'queued' || isTerminal(run.run.state))
    return { value: 'skipped' };
  const time = isoTime(input.now);
  const events: EventDraft[] = input.policy ? [policyEvent(input.nodeRunId, input.policy, time)] : [];
  if (input.policy && input.policy.decision.decision !== 'allow') {
    return { ...decideFail(view, input.nodeRunId, denied(input.policy), input.now, events), value: 'failed' };
  }
  if (input.refuse) {
    return { ...decideFail(view, input.nodeRunId, input.refuse, input.now, events), value: 'failed' };
  }
  // A step is an atomic execution: composites decompose work, they do not perform it.
  const step = input.kind === 'atomic' ? 1 : 0;
  const maxSteps = run.constraints?.budgets?.max_steps;
  if (step > 0 && maxSteps !== undefined && run.steps + step > maxSteps) {
    const error: ErrorDetail = {
      code: 'budget_exceeded',
      message: `${TERMINATION_CODES.budget_exceeded} (max_steps)`,
      details: { budget: 'max_steps', limit: maxSteps, attempted: run.steps + 1 },
    };
    return { ...decideFail(view, input.nodeRunId, error, input.now, events), value: 'failed' };
  }
  const nodeRun: NodeRun = {
    ...record.nodeRun,
    kind: input.kind,
    state: 'running',
    started_at: time,
    executor_binding: input.binding,
  };
  return {
    value: 'claimed',
    changes: {
      ...(step > 0 ? { run: { ...run, steps: run.steps + step } } : {}),
      updated: [
        {
          ...record,
          nodeRun,
          ...defined({ assignmentTokenHash: input.assignmentTokenHash, deadlineAt: input.deadlineAt }),
        },
      ],
      events,
    },
  };
}

const TERMINAL_RESULT = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Records an Atomic Executor's result: the evaluation (`node_evaluated`) and the completion
 * (`atomic_executed`, and `run_completed` for the root) in one step. A result for a NodeRun that
 * is no longer running (canceled meanwhile) changes nothing.
 */
export function decideExecutionResult(
  view: RunView,
  nodeRunId: string,
  result: AtomicExecuteResult,
  now: Date,
): Decision<CompletionOutcome> {
  const record = view.nodeRun(nodeRunId);
  if (record?.nodeRun.state !== 'running') return { value: 'unchanged' };
  if (result.node_run_id !== nodeRunId) {
    return decideFail(
      view,
      nodeRunId,
      failure('invalid_executor_result', 'The Atomic Executor answered with the result of another NodeRun', {
        node_run_id: result.node_run_id,
      }),
      now,
    );
  }
  if (!TERMINAL_RESULT.has(result.state)) {
    return decideFail(
      view,
      nodeRunId,
      failure(
        'invalid_executor_result',
        `The Atomic Executor answered with the non-terminal state '${result.state}'`,
        { state: result.state },
      ),
      now,
    );
  }
  const time = isoTime(now);
  const evaluation = {
    status: result.state === 'succeeded' ? ('success' as const) : ('fail' as const),
    reason_code: 'atomic_completed',
  };
  const evaluated: EventDraft = {
    type: 'node_evaluated',
    time,
    node_run_id: nodeRunId,
    data: { ...evaluation },
  };
  const completion = completeRecord(
    view,
    record,
    defined({
      state: result.state as 'succeeded' | 'failed' | 'canceled',
      outputs: result.outputs,
      output_artifacts: result.output_artifacts,
      error: result.error,
    }) as Parameters<typeof completeRecord>[2],
    time,
    {
      byCoordinator: false,
      executed: true,
      patch: { evaluation_result: evaluation },
      leadingEvents: [evaluated],
    },
  );
  return { value: 'completed', ...completion };
}
