/**
 * Pure decisions for `:complete` and `:evaluation`. Terminal is final: an identical repeat and a
 * completion for a NodeRun the coordinator already ended are no-ops, anything else is a conflict.
 * Completing a NodeRun ends its unfinished descendants; completing the root ends the Run.
 */

import { ArpError, nodeRunNotFound } from '../errors.js';
import type { NodeRunCompleteRequest, NodeRunEvaluationReportRequest } from '../gen/contract.js';
import { canonicalJson } from './canonical.js';
import {
  type Decision,
  type Effect,
  type EventDraft,
  EXT,
  isTerminal,
  type NodeRun,
  type NodeRunRecord,
  type Run,
  type RunView,
} from './model.js';
import { cancellationEffects, endByCoordinator } from './runs.js';
import { defined } from './shape.js';

export type CompletionOutcome = 'completed' | 'unchanged';

function requireNodeRun(view: RunView, nodeRunId: string): NodeRunRecord {
  const record = view.nodeRun(nodeRunId);
  if (!record) throw nodeRunNotFound(nodeRunId);
  return record;
}

/** Every unfinished descendant of `record`, ended by the coordinator because its ancestor finished. */
function endDescendants(view: RunView, record: NodeRunRecord, time: string): NodeRunRecord[] {
  const ended: NodeRunRecord[] = [];
  const pending = [...view.children(record.nodeRun.node_run_id)];
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    const child = view.nodeRun(id);
    if (!child) continue;
    pending.push(...view.children(id));
    if (!isTerminal(child.nodeRun.state)) ended.push(endByCoordinator(child, 'parent_completed', time));
  }
  return ended;
}

export function decideComplete(
  view: RunView,
  nodeRunId: string,
  body: NodeRunCompleteRequest,
  now: Date,
): Decision<CompletionOutcome> {
  const record = requireNodeRun(view, nodeRunId);
  const fingerprint = canonicalJson(body);
  const { nodeRun } = record;
  if (isTerminal(nodeRun.state)) {
    if (record.endedByCoordinator || record.completionFingerprint === fingerprint)
      return { value: 'unchanged' };
    throw new ArpError('node_run_already_terminal', `NodeRun '${nodeRunId}' is already ${nodeRun.state}`, {
      details: { state: nodeRun.state },
    });
  }
  const time = now.toISOString();
  const completed: NodeRun = {
    ...nodeRun,
    ...defined({ outputs: body.outputs, output_artifacts: body.output_artifacts }),
    state: body.state,
    ended_at: time,
  };
  const extensions = { ...body.extensions, ...nodeRun.extensions };
  if (body.error) extensions[EXT.completionError] = body.error;
  if (Object.keys(extensions).length > 0) completed.extensions = extensions;

  const ended = endDescendants(view, record, time);
  const events: EventDraft[] = [];
  if (nodeRun.kind === 'atomic') {
    events.push({ type: 'atomic_executed', time, node_run_id: nodeRunId, data: { state: body.state } });
  }
  const effects: Effect[] = cancellationEffects(ended, (id) => view.nodeRun(id));
  let run: Run | undefined;
  const runRecord = view.record;
  if (runRecord && runRecord.run.root_node_run_id === nodeRunId && !isTerminal(runRecord.run.state)) {
    run = { ...runRecord.run, state: body.state, ended_at: time };
    if (body.error) run.extensions = { ...runRecord.run.extensions, [EXT.completionError]: body.error };
    events.push({ type: 'run_completed', time, node_run_id: nodeRunId, data: { state: body.state } });
    effects.push({ type: 'disarm_deadline', runId: runRecord.run.run_id });
  }
  return {
    value: 'completed',
    changes: {
      ...(run && runRecord ? { run: { ...runRecord, run } } : {}),
      nodeRuns: [{ ...record, nodeRun: completed, completionFingerprint: fingerprint }, ...ended],
      events,
    },
    effects,
  };
}

export function decideEvaluation(
  view: RunView,
  nodeRunId: string,
  body: NodeRunEvaluationReportRequest,
  now: Date,
): Decision<void> {
  const record = requireNodeRun(view, nodeRunId);
  const time = now.toISOString();
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
  return { value: undefined, changes: { nodeRuns: [{ ...record, nodeRun }], events } };
}
