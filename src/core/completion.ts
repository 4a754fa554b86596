/**
 * Pure decisions for `:complete` and `:evaluation`, and the one completion path every terminal
 * transition goes through (client completions, executor results, coordinator failures). Terminal
 * is final: an identical repeat and a completion for a NodeRun the coordinator already ended are
 * no-ops, anything else is a conflict. Completing a NodeRun ends its unfinished descendants;
 * completing the root ends the Run.
 */

import { ArpError, nodeRunNotFound } from '../errors.js';
import type {
  ErrorEnvelope,
  NodeRunCompleteRequest,
  NodeRunEvaluationReportRequest,
  NodeRunTerminalState,
} from '../gen/contract.js';
import { canonicalJson } from './canonical.js';
import {
  type Changes,
  type Decision,
  type Effect,
  type EventDraft,
  EXT,
  isTerminal,
  type Needs,
  type NodeRun,
  type NodeRunRecord,
  type Run,
  type RunView,
} from './model.js';
import { defined } from './shape.js';
import { isoTime } from './time.js';

export type CompletionOutcome = 'completed' | 'unchanged';
export type ErrorDetail = ErrorEnvelope['error'];

export function requireNodeRun(view: RunView, nodeRunId: string): NodeRunRecord {
  const record = view.nodeRun(nodeRunId);
  if (!record) throw nodeRunNotFound(nodeRunId);
  return record;
}

/** What every decision about one NodeRun reads: that NodeRun (and its Run's record). */
export const nodeRunNeeds = (nodeRunId: string): Needs => ({ nodeRuns: [nodeRunId] });

export interface Completion {
  readonly state: NodeRunTerminalState;
  readonly outputs?: Record<string, unknown>;
  readonly output_artifacts?: NodeRun['output_artifacts'];
  readonly error?: ErrorDetail;
  readonly extensions?: Record<string, unknown>;
}

export interface CompletionOptions {
  /** The coordinator decided this outcome (a failure it detected), not a worker or an executor. */
  readonly byCoordinator: boolean;
  /** An executor really ran this atomic NodeRun: emit `atomic_executed`. */
  readonly executed: boolean;
  /** Canonical form of a client's `:complete` body, to recognise an identical repeat. */
  readonly fingerprint?: string;
  /** Changes to the NodeRun committed in the same step (e.g. its evaluation). */
  readonly patch?: Partial<NodeRun>;
  /** Events that precede the completion's own (e.g. `node_evaluated`). */
  readonly leadingEvents?: readonly EventDraft[];
}

/** Moves an unfinished NodeRun to a terminal state, with its cascade, in one set of changes. */
export function completeRecord(
  view: RunView,
  record: NodeRunRecord,
  completion: Completion,
  time: string,
  options: CompletionOptions,
): { changes: Changes; effects: Effect[] } {
  const { nodeRun } = record;
  const completed: NodeRun = {
    ...nodeRun,
    ...options.patch,
    ...defined({ outputs: completion.outputs, output_artifacts: completion.output_artifacts }),
    state: completion.state,
    ended_at: time,
  };
  const extensions = { ...completion.extensions, ...nodeRun.extensions };
  if (completion.error) extensions[EXT.completionError] = completion.error;
  if (Object.keys(extensions).length > 0) completed.extensions = extensions;

  const events: EventDraft[] = [...(options.leadingEvents ?? [])];
  const id = nodeRun.node_run_id;
  if (options.executed && nodeRun.kind === 'atomic') {
    events.push({ type: 'atomic_executed', time, node_run_id: id, data: { state: completion.state } });
  }
  const effects: Effect[] = [];
  let run: Run | undefined;
  const runRecord = view.record;
  if (runRecord && runRecord.run.root_node_run_id === id && !isTerminal(runRecord.run.state)) {
    run = { ...runRecord.run, state: completion.state, ended_at: time };
    if (completion.error)
      run.extensions = { ...runRecord.run.extensions, [EXT.completionError]: completion.error };
    events.push({ type: 'run_completed', time, node_run_id: id, data: { state: completion.state } });
    effects.push({ type: 'disarm_deadline', runId: runRecord.run.run_id });
  }
  const updated: NodeRunRecord = {
    ...record,
    nodeRun: completed,
    completionFingerprint: options.fingerprint,
    endedByCoordinator: options.byCoordinator,
  };
  return {
    changes: {
      ...(run && runRecord ? { run: { ...runRecord, run } } : {}),
      updated: [updated],
      // Its unfinished descendants end with it.
      ...(record.childCount > 0
        ? { cascade: { from: id, inclusive: false, reason: 'parent_completed' as const, time } }
        : {}),
      events,
    },
    effects,
  };
}

export function decideComplete(
  view: RunView,
  nodeRunId: string,
  body: NodeRunCompleteRequest,
  now: Date,
): Decision<CompletionOutcome> {
  const record = requireNodeRun(view, nodeRunId);
  const fingerprint = canonicalJson(body);
  if (isTerminal(record.nodeRun.state)) {
    if (record.endedByCoordinator || record.completionFingerprint === fingerprint)
      return { value: 'unchanged' };
    throw new ArpError(
      'node_run_already_terminal',
      `NodeRun '${nodeRunId}' is already ${record.nodeRun.state}`,
      {
        details: { state: record.nodeRun.state },
      },
    );
  }
  const result = completeRecord(view, record, body, isoTime(now), {
    byCoordinator: false,
    executed: true,
    fingerprint,
  });
  return { value: 'completed', ...result };
}

/** The coordinator fails a NodeRun it is responsible for (dispatch error, timeout, policy...). */
export function decideFail(
  view: RunView,
  nodeRunId: string,
  error: ErrorDetail,
  now: Date,
  leadingEvents: readonly EventDraft[] = [],
): Decision<CompletionOutcome> {
  const record = view.nodeRun(nodeRunId);
  // Already ended (e.g. canceled while a policy decision was pending): nothing is recorded, not even
  // the leading events, because nothing may follow a NodeRun's end in its Run's log.
  if (!record || isTerminal(record.nodeRun.state)) return { value: 'unchanged' };
  const result = completeRecord(view, record, { state: 'failed', error }, isoTime(now), {
    byCoordinator: true,
    executed: false,
    leadingEvents,
  });
  return { value: 'completed', ...result };
}

/**
 * The coordinator gives up on a running execution (it timed out, or the instance waiting for it is
 * gone): the NodeRun fails with `error` and its executor is told to stop. Anything not running is
 * left alone.
 */
export function decideAbandon(
  view: RunView,
  nodeRunId: string,
  error: ErrorDetail,
  now: Date,
): Decision<CompletionOutcome> {
  const record = view.nodeRun(nodeRunId);
  if (record?.nodeRun.state !== 'running') return { value: 'unchanged' };
  const failed = decideFail(view, nodeRunId, error, now);
  const stop = { runId: view.runId, nodeRunId, kind: record.nodeRun.kind };
  return { ...failed, effects: [...(failed.effects ?? []), { type: 'cancel_execution', execution: stop }] };
}

export function decideEvaluation(
  view: RunView,
  nodeRunId: string,
  body: NodeRunEvaluationReportRequest,
  now: Date,
): Decision<void> {
  const record = requireNodeRun(view, nodeRunId);
  const time = isoTime(now);
  const nodeRun: NodeRun = { ...record.nodeRun, evaluation_result: body.evaluation_result };
  const events: EventDraft[] = [
    {
      type: 'node_evaluated',
      time,
      node_run_id: nodeRunId,
      data: { ...body.evaluation_result },
      ...(body.extensions ? { extensions: body.extensions } : {}),
    },
  ];
  if (body.recovery_action) {
    nodeRun.recovery_actions = [...(record.nodeRun.recovery_actions ?? []), body.recovery_action];
    events.push({
      type: 'recovery_applied',
      time,
      node_run_id: nodeRunId,
      data: { ...body.recovery_action },
    });
  }
  return { value: undefined, changes: { updated: [{ ...record, nodeRun }], events } };
}
