/**
 * Pure decision for create_node_runs: all checks first, then one commit of every new NodeRun and
 * its events, or nothing at all.
 */

import { ArpError } from '../errors.js';
import type { NodeKind, NodeRunCreateSpec, NodeRunsCreateRequest, NodeTypeRef } from '../gen/contract.js';
import { canonicalJson } from './canonical.js';
import { checkCandidate, checkStructural, mergeConstraints } from './constraints.js';
import {
  type Decision,
  type Effect,
  type EventDraft,
  EXT,
  isTerminal,
  type Needs,
  type NodeRun,
  type NodeRunRecord,
  type RunView,
} from './model.js';
import { sharedNodeTypeRef } from './refs.js';
import { newNodeRunRecord } from './runs.js';
import { defined, withExtensions } from './shape.js';
import { isoTime } from './time.js';

export interface CreateNodeRunsInput {
  readonly request: NodeRunsCreateRequest;
  readonly now: Date;
  readonly newId: () => string;
  /** Kind of a node type when it is known before dispatch (e.g. from its id prefix). */
  readonly kindOf: (ref: NodeTypeRef) => NodeKind | undefined;
}

/** 400 when one request uses the same idempotency key twice. */
function rejectDuplicateKeys(specs: readonly NodeRunCreateSpec[]): void {
  if (specs.length < 2) return;
  const seen = new Map<string, number>();
  specs.forEach((spec, index) => {
    const key = spec.idempotency_key;
    if (key === undefined) return;
    const first = seen.get(key);
    if (first !== undefined) {
      throw new ArpError('invalid_request', `idempotency_key '${key}' appears more than once in node_runs`, {
        details: {
          errors: [
            { path: `/node_runs/${index}/idempotency_key`, message: `duplicates /node_runs/${first}` },
          ],
        },
      });
    }
    seen.set(key, index);
  });
}

function loadParent(view: RunView, parentId: string): NodeRunRecord {
  const record = view.record;
  if (!record) throw new ArpError('run_not_found', `Run '${view.runId}' not found`);
  if (isTerminal(record.run.state)) {
    throw new ArpError('run_already_terminal', `Run '${view.runId}' is already ${record.run.state}`, {
      details: { state: record.run.state },
    });
  }
  const parent = view.nodeRun(parentId);
  if (!parent) {
    if (view.locate(parentId) !== undefined) {
      throw new ArpError('parent_node_run_mismatch', 'Parent NodeRun does not belong to the requested run');
    }
    throw new ArpError('parent_node_run_not_found', `Parent NodeRun '${parentId}' not found`);
  }
  if (isTerminal(parent.nodeRun.state)) {
    throw new ArpError(
      'parent_node_run_terminal',
      `Parent NodeRun '${parentId}' is already ${parent.nodeRun.state}`,
      {
        details: { state: parent.nodeRun.state },
      },
    );
  }
  if (parent.nodeRun.kind === 'atomic') {
    throw new ArpError('parent_node_run_invalid', 'Parent NodeRun is atomic and cannot have child NodeRuns');
  }
  return parent;
}

function childExtensions(spec: NodeRunCreateSpec, constraints: NodeRunRecord['constraints']) {
  return {
    ...spec.extensions,
    [EXT.constraints]: constraints,
    [EXT.idempotencyKey]: spec.idempotency_key,
    [EXT.candidateSetId]: spec.candidate_set_id ?? spec.binding_decision?.candidate_set_id,
    [EXT.bindingDecision]: spec.binding_decision,
    [EXT.metadata]: spec.metadata,
    [EXT.requestedExecutorInstanceId]: spec.requested_executor_instance_id,
  };
}

/** Appends the events of one new child to `events`. */
function pushChildEvents(
  events: EventDraft[],
  nodeRun: NodeRun,
  spec: NodeRunCreateSpec,
  time: string,
): void {
  const id = nodeRun.node_run_id;
  events.push({
    type: 'node_run_assigned',
    time,
    node_run_id: id,
    data: { parent_node_run_id: nodeRun.parent_node_run_id },
  });
  // The order of the reference implementation, which existing ARP consumers see.
  if (spec.binding_decision) {
    events.push({ type: 'subtask_mapped', time, node_run_id: id, data: { ...spec.binding_decision } });
  }
  const candidateSetId = spec.candidate_set_id ?? spec.binding_decision?.candidate_set_id;
  if (candidateSetId !== undefined) {
    const data = defined({ candidate_set_id: candidateSetId, subtask_id: spec.binding_decision?.subtask_id });
    events.push({ type: 'candidate_set_generated', time, node_run_id: id, data });
  }
}

/**
 * A new child's wire object, before its extensions: absent `kind` and `inputs` are omitted. One
 * literal per combination, since a field added after the literal costs the object a separate
 * property array for as long as the NodeRun is held.
 */
function childNodeRun(
  node_run_id: string,
  run_id: string,
  spec: NodeRunCreateSpec,
  kind: NodeKind | undefined,
  parent_node_run_id: string,
  created_at: string,
): NodeRun {
  const node_type_ref = sharedNodeTypeRef(spec.node_type_ref);
  const { inputs } = spec;
  const state = 'queued';
  if (kind === undefined) {
    return inputs === undefined
      ? { node_run_id, run_id, node_type_ref, parent_node_run_id, state, created_at }
      : { node_run_id, run_id, node_type_ref, parent_node_run_id, state, created_at, inputs };
  }
  return inputs === undefined
    ? { node_run_id, run_id, node_type_ref, kind, parent_node_run_id, state, created_at }
    : { node_run_id, run_id, node_type_ref, kind, parent_node_run_id, state, created_at, inputs };
}

/** What create_node_runs reads: the parent and the NodeRuns already created under its keys. */
export function createNeeds(request: NodeRunsCreateRequest): Needs {
  const keys = request.node_runs.flatMap((spec) =>
    spec.idempotency_key === undefined ? [] : [spec.idempotency_key],
  );
  const parentId = request.parent_node_run_id;
  return keys.length > 0
    ? { nodeRuns: [parentId], idempotency: { parentId, keys } }
    : { nodeRuns: [parentId] };
}

export function decideCreateNodeRuns(view: RunView, input: CreateNodeRunsInput): Decision<NodeRun[]> {
  const { request, now } = input;
  rejectDuplicateKeys(request.node_runs);
  const parent = loadParent(view, request.parent_node_run_id);
  const parentId = parent.nodeRun.node_run_id;
  const time = isoTime(now);
  const result: NodeRun[] = [];
  const created: NodeRunRecord[] = [];
  const effects: Effect[] = [];
  // The round's own event comes first; its count is known once every spec is through.
  const decomposedData = { node_run_count: 0, round: parent.rounds + 1 };
  const events: EventDraft[] = [
    { type: 'composite_decomposed', time, node_run_id: parentId, data: decomposedData },
  ];

  for (let index = 0; index < request.node_runs.length; index++) {
    const spec = request.node_runs[index]!;
    const key = spec.idempotency_key;
    // Only keyed specs can be replayed, so only they need a canonical form.
    const fingerprint = key === undefined ? undefined : canonicalJson(spec);
    const existing = key === undefined ? undefined : view.idempotent(parentId, key);
    if (existing) {
      if (existing.idempotency?.fingerprint !== fingerprint) {
        throw new ArpError(
          'idempotency_conflict',
          `idempotency_key '${key}' was already used with a different spec`,
          {
            details: { idempotency_key: key, node_run_id: existing.nodeRun.node_run_id, index },
          },
        );
      }
      result.push(existing.nodeRun);
      continue;
    }
    checkCandidate(parent.constraints?.candidates, spec.node_type_ref.node_type_id, index);
    // Children without constraints of their own share the parent's (immutable) envelope.
    const constraints = spec.constraints
      ? mergeConstraints(parent.constraints, spec.constraints)
      : parent.constraints;
    const id = input.newId();
    const nodeRun = withExtensions(
      childNodeRun(id, view.runId, spec, input.kindOf(spec.node_type_ref), parentId, time),
      childExtensions(spec, constraints),
    );
    const idempotency = key === undefined || fingerprint === undefined ? undefined : { key, fingerprint };
    created.push(newNodeRunRecord(nodeRun, parent.depth + 1, constraints, idempotency));
    pushChildEvents(events, nodeRun, spec, time);
    effects.push({ type: 'dispatch', nodeRunId: id });
    result.push(nodeRun);
  }

  if (created.length === 0) return { value: result };
  checkStructural(parent.constraints?.structural, {
    childDepth: parent.depth + 1,
    childrenAfter: parent.childCount + created.length,
    totalAfter: view.nodeRunCount() + created.length,
    roundsAfter: parent.rounds + 1,
  });
  decomposedData.node_run_count = created.length;
  const updatedParent: NodeRunRecord = {
    ...parent,
    childCount: parent.childCount + created.length,
    rounds: parent.rounds + 1,
  };
  return {
    value: result,
    changes: { updated: [updatedParent], created, events },
    effects,
  };
}
