/**
 * Table-driven tests of the pure core (src/core): every NodeRun and Run state against every
 * operation, the create_node_runs checks and limits, idempotency, event sequences, constraint
 * merging and client-id rules.
 *
 * The core is exercised without HTTP and without a Store: `World` below is a minimal holder of
 * committed state that builds `RunView`s and applies `Decision`s. It also checks, on every decision,
 * that the decide function did not mutate the view it was given.
 */
import { describe, expect, it } from 'vitest';
import { decideComplete, decideEvaluation } from '../../src/core/completion.js';
import { mergeConstraints } from '../../src/core/constraints.js';
import { assertClientId, kindFromPrefix, MAX_CLIENT_ID_LENGTH } from '../../src/core/ids.js';
import {
  type ConstraintEnvelope,
  type Decision,
  EXT,
  type NodeRun,
  type NodeRunRecord,
  type RunEvent,
  type RunRecord,
  type RunView,
} from '../../src/core/model.js';
import { decideCreateNodeRuns } from '../../src/core/node-runs.js';
import { decideStartRun, decideTerminateRun } from '../../src/core/runs.js';
import { ArpError, type ErrorCode } from '../../src/errors.js';
import type {
  NodeRunCompleteRequest,
  NodeRunCreateSpec,
  NodeRunEvaluationReportRequest,
  NodeTypeRef,
  RunStartRequest,
} from '../../src/gen/contract.js';

// ---------------------------------------------------------------------------------------------
// Test world
// ---------------------------------------------------------------------------------------------

interface Slot {
  record: RunRecord | undefined;
  readonly nodeRuns: Map<string, NodeRunRecord>;
  readonly events: RunEvent[];
  readonly idempotency: Map<string, string>;
  readonly children: Map<string, string[]>;
}

type Committed<T> = Decision<T> & { readonly committed: readonly RunEvent[] };

const emptySlot = (): Slot => ({
  record: undefined,
  nodeRuns: new Map(),
  events: [],
  idempotency: new Map(),
  children: new Map(),
});

const ref = (node_type_id: string, version = '1.0.0'): NodeTypeRef => ({ node_type_id, version });
const kindOf = (nodeTypeRef: NodeTypeRef) => kindFromPrefix(nodeTypeRef.node_type_id);
const spec = (type: string, extra: Partial<NodeRunCreateSpec> = {}): NodeRunCreateSpec => ({
  node_type_ref: ref(type),
  inputs: {},
  ...extra,
});

class World {
  readonly runs = new Map<string, Slot>();
  readonly locations = new Map<string, string>();
  #clock = Date.parse('2026-01-01T00:00:00.000Z');
  #nodeIds = 0;
  #runIds = 0;

  /** Deterministic, strictly increasing time. */
  now(): Date {
    this.#clock += 1000;
    return new Date(this.#clock);
  }

  readonly newNodeRunId = (): string => `node_run_${++this.#nodeIds}`;
  newRunId(): string {
    return `run_${++this.#runIds}`;
  }

  view(runId: string): RunView {
    const slot = this.runs.get(runId) ?? emptySlot();
    return {
      runId,
      record: slot.record,
      nodeRun: (id) => slot.nodeRuns.get(id),
      locate: (id) => this.locations.get(id),
      nodeRunCount: () => slot.nodeRuns.size,
      idempotent: (parentId, key) => {
        const id = slot.idempotency.get(`${parentId}\n${key}`);
        return id === undefined ? undefined : slot.nodeRuns.get(id);
      },
      lastSeq: () => slot.events.length,
      events: (afterSeq, limit) => slot.events.slice(afterSeq, afterSeq + limit),
      nodeRuns: () => slot.nodeRuns.values(),
      children: (id) => slot.children.get(id) ?? [],
    };
  }

  /** Everything committed, as one string: equal snapshots = nothing changed. */
  snapshot(): string {
    return JSON.stringify(
      [...this.runs].map(([id, slot]) => [
        id,
        slot.record,
        [...slot.nodeRuns],
        slot.events,
        [...slot.idempotency],
        [...slot.children],
      ]),
    );
  }

  /** Runs `decide` against a view of `runId` and commits its changes; rethrows what it throws. */
  decide<T>(runId: string, decide: (view: RunView) => Decision<T>): Committed<T> {
    const before = this.snapshot();
    let decision: Decision<T>;
    try {
      decision = decide(this.view(runId));
    } finally {
      expect(this.snapshot(), 'a decide function mutated its view').toBe(before);
    }
    return { ...decision, committed: this.#apply(runId, decision) };
  }

  #apply<T>(runId: string, decision: Decision<T>): RunEvent[] {
    const changes = decision.changes;
    if (!changes) return [];
    let slot = this.runs.get(runId);
    if (!slot) {
      slot = emptySlot();
      this.runs.set(runId, slot);
    }
    if (changes.run) slot.record = changes.run;
    for (const record of changes.nodeRuns ?? []) {
      const id = record.nodeRun.node_run_id;
      if (!slot.nodeRuns.has(id)) {
        this.locations.set(id, runId);
        const parent = record.nodeRun.parent_node_run_id;
        if (parent !== undefined) slot.children.set(parent, [...(slot.children.get(parent) ?? []), id]);
        if (record.idempotency && parent !== undefined)
          slot.idempotency.set(`${parent}\n${record.idempotency.key}`, id);
      }
      slot.nodeRuns.set(id, record);
    }
    const committed: RunEvent[] = [];
    for (const draft of changes.events ?? []) {
      const event: RunEvent = { run_id: runId, seq: slot.events.length + 1, ...draft };
      slot.events.push(event);
      committed.push(event);
    }
    return committed;
  }

  // --- operations, as the coordinator shell performs them -------------------------------------

  start(overrides: Partial<RunStartRequest> = {}, runId = overrides.run_id ?? this.newRunId()) {
    const request: RunStartRequest = {
      run_id: runId,
      root_node_type_ref: ref('composite.root'),
      input: {},
      ...overrides,
    };
    const rootNodeRunId = this.newNodeRunId();
    const decision = this.decide(runId, (view) =>
      decideStartRun(view, {
        request,
        runId,
        rootNodeRunId,
        rootKind: kindOf(request.root_node_type_ref),
        now: this.now(),
      }),
    );
    return { runId, rootId: decision.value.root_node_run_id, request, decision };
  }

  create(runId: string, parentId: string, specs: NodeRunCreateSpec[]): Committed<NodeRun[]> {
    return this.decide(runId, (view) =>
      decideCreateNodeRuns(view, {
        request: { run_id: runId, parent_node_run_id: parentId, node_runs: specs },
        now: this.now(),
        newId: this.newNodeRunId,
        kindOf,
      }),
    );
  }

  /** Creates one child and returns its id. */
  child(runId: string, parentId: string, type = 'composite.child', extra: Partial<NodeRunCreateSpec> = {}) {
    return this.create(runId, parentId, [spec(type, extra)]).value[0]!.node_run_id;
  }

  complete(nodeRunId: string, body: NodeRunCompleteRequest) {
    const runId = this.locations.get(nodeRunId) ?? 'run_unknown';
    return this.decide(runId, (view) => decideComplete(view, nodeRunId, body, this.now()));
  }

  evaluate(nodeRunId: string, body: NodeRunEvaluationReportRequest) {
    const runId = this.locations.get(nodeRunId) ?? 'run_unknown';
    return this.decide(runId, (view) => decideEvaluation(view, nodeRunId, body, this.now()));
  }

  cancel(runId: string) {
    return this.decide(runId, (view) =>
      decideTerminateRun(view, { now: this.now(), state: 'canceled', reason: 'run_canceled' }),
    );
  }

  expire(runId: string, limit = 1000) {
    return this.decide(runId, (view) =>
      decideTerminateRun(view, {
        now: this.now(),
        state: 'failed',
        reason: 'budget_exceeded',
        detail: { budget: 'max_wall_time_ms', limit },
      }),
    );
  }

  // --- inspection and direct edits -------------------------------------------------------------

  record(nodeRunId: string): NodeRunRecord {
    const runId = this.locations.get(nodeRunId);
    const record = runId === undefined ? undefined : this.runs.get(runId)?.nodeRuns.get(nodeRunId);
    if (!record) throw new Error(`test world has no NodeRun ${nodeRunId}`);
    return record;
  }

  run(runId: string): RunRecord {
    const record = this.runs.get(runId)?.record;
    if (!record) throw new Error(`test world has no Run ${runId}`);
    return record;
  }

  events(runId: string): readonly RunEvent[] {
    return this.runs.get(runId)?.events ?? [];
  }

  /** Replaces a committed record, e.g. to put a NodeRun into `running` as a dispatcher would. */
  put(record: NodeRunRecord): void {
    const runId = this.locations.get(record.nodeRun.node_run_id);
    if (runId === undefined) throw new Error('put() only replaces existing records');
    this.runs.get(runId)!.nodeRuns.set(record.nodeRun.node_run_id, record);
  }

  setRunning(nodeRunId: string): void {
    const record = this.record(nodeRunId);
    this.put({
      ...record,
      nodeRun: { ...record.nodeRun, state: 'running', started_at: this.now().toISOString() },
    });
  }
}

/** Runs `fn`, expects an ArpError with `code`, and returns it. */
function expectArpError(fn: () => unknown, code: ErrorCode): ArpError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ArpError ${code}`).toBeInstanceOf(ArpError);
  expect((thrown as ArpError).code).toBe(code);
  return thrown as ArpError;
}

/** Expects `fn` to throw `code` and to leave the world exactly as it was. */
function expectRejected(w: World, fn: () => unknown, code: ErrorCode): ArpError {
  const before = w.snapshot();
  const error = expectArpError(fn, code);
  expect(w.snapshot(), 'a rejected decision must commit nothing').toBe(before);
  return error;
}

const types = (events: readonly { type: string }[]) => events.map((event) => event.type);
const typed = (events: readonly { type: string; node_run_id?: string }[]) =>
  events.map((event) => [event.type, event.node_run_id]);
const completionError = (record: { extensions?: Record<string, unknown> }) =>
  record.extensions?.[EXT.completionError] as { code: string } | undefined;

// ---------------------------------------------------------------------------------------------
// NodeRun state × operation
// ---------------------------------------------------------------------------------------------

type NodeState = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
type NodeOp =
  | 'complete succeeded'
  | 'complete failed'
  | 'complete canceled'
  | 'identical repeat complete'
  | 'different repeat complete'
  | 'evaluation'
  | 'create children';
type NodeOutcome = 'completed' | 'unchanged' | 'accepted' | ErrorCode;

const NODE_TABLE: Record<NodeState, Record<NodeOp, NodeOutcome>> = {
  queued: {
    'complete succeeded': 'completed',
    'complete failed': 'completed',
    'complete canceled': 'completed',
    'identical repeat complete': 'unchanged',
    'different repeat complete': 'node_run_already_terminal',
    evaluation: 'accepted',
    'create children': 'accepted',
  },
  running: {
    'complete succeeded': 'completed',
    'complete failed': 'completed',
    'complete canceled': 'completed',
    'identical repeat complete': 'unchanged',
    'different repeat complete': 'node_run_already_terminal',
    evaluation: 'accepted',
    'create children': 'accepted',
  },
  succeeded: {
    'complete succeeded': 'node_run_already_terminal',
    'complete failed': 'node_run_already_terminal',
    'complete canceled': 'node_run_already_terminal',
    'identical repeat complete': 'unchanged',
    'different repeat complete': 'node_run_already_terminal',
    evaluation: 'accepted',
    'create children': 'parent_node_run_terminal',
  },
  failed: {
    'complete succeeded': 'node_run_already_terminal',
    'complete failed': 'node_run_already_terminal',
    'complete canceled': 'node_run_already_terminal',
    'identical repeat complete': 'unchanged',
    'different repeat complete': 'node_run_already_terminal',
    evaluation: 'accepted',
    'create children': 'parent_node_run_terminal',
  },
  canceled: {
    'complete succeeded': 'node_run_already_terminal',
    'complete failed': 'node_run_already_terminal',
    'complete canceled': 'node_run_already_terminal',
    'identical repeat complete': 'unchanged',
    'different repeat complete': 'node_run_already_terminal',
    evaluation: 'accepted',
    'create children': 'parent_node_run_terminal',
  },
};

const NODE_CASES = Object.entries(NODE_TABLE).flatMap(([state, row]) =>
  Object.entries(row).map(([op, outcome]) => [state as NodeState, op as NodeOp, outcome] as const),
);

/** A non-root composite NodeRun in `state`; terminal states are reached by a worker's `:complete`. */
function nodeInState(state: NodeState) {
  const w = new World();
  const { runId, rootId } = w.start();
  const id = w.child(runId, rootId, 'composite.subject');
  let first: NodeRunCompleteRequest | undefined;
  if (state === 'running') w.setRunning(id);
  if (state !== 'queued' && state !== 'running') {
    first = { state, outputs: { attempt: 1 } };
    w.complete(id, first);
  }
  return { w, runId, rootId, id, first };
}

/** Performs any preparation an operation needs and returns the call under test. */
function prepare(ctx: ReturnType<typeof nodeInState>, op: NodeOp): () => Committed<unknown> {
  const { w, runId, id } = ctx;
  const repeatBase = (): NodeRunCompleteRequest => {
    if (ctx.first) return ctx.first;
    const body: NodeRunCompleteRequest = { state: 'succeeded', outputs: { attempt: 1 } };
    w.complete(id, body);
    return body;
  };
  switch (op) {
    case 'complete succeeded':
    case 'complete failed':
    case 'complete canceled': {
      const state = op.slice('complete '.length) as NodeRunCompleteRequest['state'];
      return () => w.complete(id, { state, outputs: { attempt: 2 } });
    }
    case 'identical repeat complete': {
      const body = repeatBase();
      return () => w.complete(id, structuredClone(body));
    }
    case 'different repeat complete': {
      const body = repeatBase();
      return () => w.complete(id, { ...body, outputs: { attempt: 3 } });
    }
    case 'evaluation':
      return () => w.evaluate(id, { evaluation_result: { status: 'success', reason_code: 'checked' } });
    case 'create children':
      return () => w.create(runId, id, [spec('atomic.leaf')]);
  }
}

describe('NodeRun state × operation', () => {
  it.each(NODE_CASES)('%s NodeRun, %s → %s', (state, op, outcome) => {
    const ctx = nodeInState(state);
    const { w, id } = ctx;
    expect(w.record(id).nodeRun.state).toBe(state);
    const call = prepare(ctx, op);
    const before = w.record(id);
    const snapshot = w.snapshot();

    if (outcome !== 'completed' && outcome !== 'unchanged' && outcome !== 'accepted') {
      expectRejected(w, call, outcome);
      return;
    }
    const result = call();
    const after = w.record(id);
    switch (outcome) {
      case 'completed': {
        expect(result.value).toBe('completed');
        expect(after.nodeRun.state).toBe(op.slice('complete '.length));
        expect(after.nodeRun.outputs).toEqual({ attempt: 2 });
        expect(after.nodeRun.ended_at).toBeDefined();
        expect(after.endedByCoordinator).toBe(false);
        expect(after.completionFingerprint).toBeDefined();
        expect(w.run(ctx.runId).run.state, 'a non-root completion does not end the Run').toBe('running');
        break;
      }
      case 'unchanged':
        expect(result.value).toBe('unchanged');
        expect(result.changes).toBeUndefined();
        expect(result.effects ?? []).toEqual([]);
        expect(w.snapshot()).toBe(snapshot);
        break;
      case 'accepted':
        if (op === 'evaluation') {
          expect(after.nodeRun.state, 'evaluation never changes state').toBe(state);
          expect(after.nodeRun.evaluation_result).toEqual({ status: 'success', reason_code: 'checked' });
          expect(types(result.committed)).toEqual(['node_evaluated']);
        } else {
          const created = result.value as NodeRun[];
          expect(created).toHaveLength(1);
          expect(created[0]!.parent_node_run_id).toBe(id);
          expect(after.nodeRun).toEqual(before.nodeRun);
          expect(after.childCount).toBe(1);
          expect(w.view(ctx.runId).children(id)).toEqual([created[0]!.node_run_id]);
        }
        break;
    }
  });

  it('an unknown NodeRun is node_run_not_found for complete and evaluation', () => {
    const w = new World();
    w.start();
    expectRejected(w, () => w.complete('node_run_nope', { state: 'succeeded' }), 'node_run_not_found');
    expectRejected(
      w,
      () => w.evaluate('node_run_nope', { evaluation_result: { status: 'fail' } }),
      'node_run_not_found',
    );
  });

  it('complete stores outputs, artifacts, ended_at and the error under rc.completion_error', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    const error = { code: 'tool_failed', message: 'boom', details: { exit: 2 } };
    const artifacts = [{ type: 'file', id: 'f1' }];
    w.complete(id, { state: 'failed', outputs: { partial: true }, output_artifacts: artifacts, error });
    const { nodeRun } = w.record(id);
    expect(nodeRun).toMatchObject({
      state: 'failed',
      outputs: { partial: true },
      output_artifacts: artifacts,
    });
    expect(nodeRun.ended_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(nodeRun.extensions?.[EXT.completionError]).toEqual(error);
    expect(nodeRun).not.toHaveProperty('error');
  });

  it('an identical repeat is recognised regardless of key order', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    w.complete(id, { state: 'succeeded', outputs: { a: 1, b: { c: 2, d: 3 } } });
    const repeat = w.complete(id, { outputs: { b: { d: 3, c: 2 }, a: 1 }, state: 'succeeded' });
    expect(repeat.value).toBe('unchanged');
  });
});

// ---------------------------------------------------------------------------------------------
// NodeRuns the coordinator ended
// ---------------------------------------------------------------------------------------------

describe('completion of a NodeRun the coordinator ended', () => {
  const enders = {
    'cancel_run (run_canceled)': (w: World, runId: string, _parentId: string) => w.cancel(runId),
    'budget expiry (budget_exceeded)': (w: World, runId: string, _parentId: string) => w.expire(runId),
    'parent completion (parent_completed)': (w: World, _runId: string, parentId: string) =>
      w.complete(parentId, { state: 'succeeded' }),
  };
  const bodies: [string, NodeRunCompleteRequest][] = [
    ['canceled, as a composite executor reports after a cancel', { state: 'canceled' }],
    ['succeeded with outputs', { state: 'succeeded', outputs: { late: true } }],
    ['failed with an error', { state: 'failed', error: { code: 'late', message: 'late' } }],
  ];
  const cases = Object.keys(enders).flatMap((ender) =>
    bodies.map(([label, body]) => [ender as keyof typeof enders, label, body] as const),
  );

  it.each(cases)('ended by %s, then :complete %s → unchanged, no changes', (ender, _label, body) => {
    const w = new World();
    const { runId, rootId } = w.start();
    const parent = w.child(runId, rootId, 'composite.parent');
    const target = w.child(runId, parent, 'atomic.leaf');
    enders[ender](w, runId, parent);
    const record = w.record(target);
    expect(record.nodeRun.state).toBe('canceled');
    expect(record.endedByCoordinator).toBe(true);

    const snapshot = w.snapshot();
    const result = w.complete(target, body);
    expect(result.value).toBe('unchanged');
    expect(result.changes).toBeUndefined();
    expect(result.committed).toEqual([]);
    expect(w.snapshot()).toBe(snapshot);
  });

  it('a NodeRun a worker canceled is not coordinator-ended: a different body is 409', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    w.complete(id, { state: 'canceled' });
    expect(w.record(id).endedByCoordinator).toBe(false);
    expectRejected(w, () => w.complete(id, { state: 'succeeded' }), 'node_run_already_terminal');
  });
});

// ---------------------------------------------------------------------------------------------
// Composite completion and root completion
// ---------------------------------------------------------------------------------------------

describe('completing a composite', () => {
  /**
   * root (composite, running)
   * ├── a (composite, running) ── a1 (composite) ── a1x (atomic, running)
   * │                          ├── a2 (atomic, succeeded by a worker)
   * │                          └── a3 (atomic, queued)
   * └── b (composite, queued) ── b1 (atomic, queued)
   */
  function tree() {
    const w = new World();
    const { runId, rootId } = w.start();
    const a = w.child(runId, rootId, 'composite.a');
    const b = w.child(runId, rootId, 'composite.b');
    const a1 = w.child(runId, a, 'composite.a1');
    const a2 = w.child(runId, a, 'atomic.a2');
    const a3 = w.child(runId, a, 'atomic.a3');
    const a1x = w.child(runId, a1, 'atomic.a1x');
    const b1 = w.child(runId, b, 'atomic.b1');
    w.complete(a2, { state: 'succeeded', outputs: { ok: 1 } });
    for (const id of [rootId, a, a1x]) w.setRunning(id);
    return { w, runId, rootId, a, b, a1, a2, a3, a1x, b1 };
  }

  it('cancels every non-terminal descendant (grandchildren too) with parent_completed', () => {
    const t = tree();
    const a2Before = t.w.record(t.a2);
    const a1xBefore = t.w.record(t.a1x).nodeRun;
    const result = t.w.complete(t.a, { state: 'failed', error: { code: 'child_failed', message: 'x' } });

    expect(result.value).toBe('completed');
    const endedIds = (result.changes?.nodeRuns ?? []).slice(1).map((r) => r.nodeRun.node_run_id);
    expect(new Set(endedIds)).toEqual(new Set([t.a1, t.a3, t.a1x]));
    for (const id of [t.a1, t.a3, t.a1x]) {
      const record = t.w.record(id);
      expect(record.nodeRun.state).toBe('canceled');
      expect(record.nodeRun.ended_at).toBeDefined();
      expect(record.endedByCoordinator).toBe(true);
      expect(completionError(record.nodeRun)?.code).toBe('parent_completed');
    }
    expect(t.w.record(t.a2), 'terminal descendants keep their state').toEqual(a2Before);
    for (const id of [t.b, t.b1])
      expect(t.w.record(id).nodeRun.state, 'siblings are untouched').toBe('queued');
    expect(t.w.record(t.rootId).nodeRun.state).toBe('running');
    expect(t.w.run(t.runId).run.state).toBe('running');
    // Only the running descendant gets a cancel call to its executor, with the record before the cancel.
    expect(result.effects).toEqual([{ type: 'cancel_execution', nodeRun: a1xBefore }]);
    expect(result.committed, 'a non-root composite completion emits no event').toEqual([]);
  });

  it.each([
    ['succeeded', undefined],
    ['failed', undefined],
    ['failed', { code: 'planner_failed', message: 'no plan', details: { step: 3 } }],
    ['canceled', undefined],
  ] as const)('root %s (error %j) → Run ends in the same state, descendants canceled', (state, error) => {
    const t = tree();
    const runningBefore = [t.w.record(t.a).nodeRun, t.w.record(t.a1x).nodeRun];
    const result = t.w.complete(t.rootId, error ? { state, error } : { state });

    const run = t.w.run(t.runId).run;
    expect(run.state).toBe(state);
    expect(run.ended_at).toBe(t.w.record(t.rootId).nodeRun.ended_at);
    if (error) {
      expect(run.extensions?.[EXT.completionError]).toEqual(error);
      expect(t.w.record(t.rootId).nodeRun.extensions?.[EXT.completionError]).toEqual(error);
    } else {
      expect(run.extensions?.[EXT.completionError]).toBeUndefined();
    }
    for (const id of [t.a, t.b, t.a1, t.a3, t.a1x, t.b1]) {
      expect(t.w.record(id).nodeRun.state).toBe('canceled');
      expect(completionError(t.w.record(id).nodeRun)?.code).toBe('parent_completed');
    }
    expect(t.w.record(t.a2).nodeRun.state).toBe('succeeded');
    expect(typed(result.committed)).toEqual([['run_completed', t.rootId]]);
    expect(result.committed[0]!.data).toEqual({ state });
    // The running descendants (not the root itself) get a cancel call, with their record before the cancel.
    const cancels = (result.effects ?? []).filter((e) => e.type === 'cancel_execution');
    expect(cancels).toHaveLength(2);
    expect(cancels).toEqual(
      expect.arrayContaining(runningBefore.map((nodeRun) => ({ type: 'cancel_execution', nodeRun }))),
    );
    expect(result.effects).toContainEqual({ type: 'disarm_deadline', runId: t.runId });
  });

  it('an atomic root completion emits atomic_executed then run_completed', () => {
    const w = new World();
    const { runId, rootId } = w.start({ root_node_type_ref: ref('atomic.root') });
    const result = w.complete(rootId, { state: 'succeeded', outputs: { y: 1 } });
    expect(typed(result.committed)).toEqual([
      ['atomic_executed', rootId],
      ['run_completed', rootId],
    ]);
    expect(result.committed[0]!.data).toEqual({ state: 'succeeded' });
    expect(w.run(runId).run.state).toBe('succeeded');
  });

  it('after the root completed, late completions of canceled descendants change nothing', () => {
    const t = tree();
    t.w.complete(t.rootId, { state: 'succeeded' });
    const snapshot = t.w.snapshot();
    expect(t.w.complete(t.a, { state: 'failed' }).value).toBe('unchanged');
    expect(t.w.complete(t.b1, { state: 'succeeded', outputs: { x: 1 } }).value).toBe('unchanged');
    expect(t.w.snapshot()).toBe(snapshot);
  });
});

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

describe('report_node_run_evaluation', () => {
  it('appends recovery_actions (two reports → two actions) and emits node_evaluated then recovery_applied', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    const first = w.evaluate(id, {
      evaluation_result: { status: 'fail', reason_code: 'bad_output' },
      recovery_action: { type: 'retry', message: 'once more' },
    });
    const second = w.evaluate(id, {
      evaluation_result: { status: 'fail', reason_code: 'still_bad' },
      recovery_action: { type: 'abort' },
    });
    expect(typed(first.committed)).toEqual([
      ['node_evaluated', id],
      ['recovery_applied', id],
    ]);
    expect(typed(second.committed)).toEqual([
      ['node_evaluated', id],
      ['recovery_applied', id],
    ]);
    expect(first.committed[0]!.data).toEqual({ status: 'fail', reason_code: 'bad_output' });
    expect(first.committed[1]!.data).toEqual({ type: 'retry', message: 'once more' });
    const { nodeRun } = w.record(id);
    expect(nodeRun.recovery_actions).toEqual([{ type: 'retry', message: 'once more' }, { type: 'abort' }]);
    expect(nodeRun.evaluation_result).toEqual({ status: 'fail', reason_code: 'still_bad' });
    expect(nodeRun.state).toBe('queued');
  });

  it('a report without recovery_action emits only node_evaluated and keeps earlier actions', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    w.evaluate(id, { evaluation_result: { status: 'fail' }, recovery_action: { type: 'remap' } });
    const result = w.evaluate(id, { evaluation_result: { status: 'success', confidence: 0.9 } });
    expect(types(result.committed)).toEqual(['node_evaluated']);
    expect(w.record(id).nodeRun.recovery_actions).toEqual([{ type: 'remap' }]);
    expect(w.record(id).nodeRun.evaluation_result).toEqual({ status: 'success', confidence: 0.9 });
    expect(result.effects ?? []).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Run state × operation
// ---------------------------------------------------------------------------------------------

type RunStateCase = 'running' | 'succeeded' | 'failed' | 'failed (budget)' | 'canceled';
type RunOp =
  | 'cancel'
  | 'create_node_runs'
  | 'start_run identical'
  | 'start_run different'
  | 'evaluation of the root';
type RunOutcome = 'canceled' | 'unchanged' | 'accepted' | 'same run' | ErrorCode;

const TERMINAL_RUN_ROW: Record<RunOp, RunOutcome> = {
  cancel: 'unchanged',
  create_node_runs: 'run_already_terminal',
  'start_run identical': 'same run',
  'start_run different': 'run_already_exists',
  'evaluation of the root': 'accepted',
};
const RUN_TABLE: Record<RunStateCase, Record<RunOp, RunOutcome>> = {
  running: {
    cancel: 'canceled',
    create_node_runs: 'accepted',
    'start_run identical': 'same run',
    'start_run different': 'run_already_exists',
    'evaluation of the root': 'accepted',
  },
  succeeded: TERMINAL_RUN_ROW,
  failed: TERMINAL_RUN_ROW,
  'failed (budget)': TERMINAL_RUN_ROW,
  canceled: TERMINAL_RUN_ROW,
};
const RUN_CASES = Object.entries(RUN_TABLE).flatMap(([state, row]) =>
  Object.entries(row).map(([op, outcome]) => [state as RunStateCase, op as RunOp, outcome] as const),
);

function runInState(state: RunStateCase) {
  const w = new World();
  const started = w.start({ input: { goal: 'x' } }, 'run_subject');
  const { runId, rootId } = started;
  w.child(runId, rootId, 'atomic.leaf');
  if (state === 'succeeded' || state === 'failed') w.complete(rootId, { state });
  if (state === 'failed (budget)') w.expire(runId);
  if (state === 'canceled') w.cancel(runId);
  return { w, runId, rootId, request: started.request };
}

describe('Run state × operation', () => {
  it.each(RUN_CASES)('%s Run, %s → %s', (state, op, outcome) => {
    const { w, runId, rootId, request } = runInState(state);
    expect(w.run(runId).run.state).toBe(state === 'failed (budget)' ? 'failed' : state);
    const call = {
      cancel: () => w.cancel(runId),
      create_node_runs: () => w.create(runId, rootId, [spec('atomic.more')]),
      'start_run identical': () => w.start(structuredClone(request), runId).decision,
      'start_run different': () => w.start({ ...request, input: { goal: 'y' } }, runId).decision,
      'evaluation of the root': () => w.evaluate(rootId, { evaluation_result: { status: 'success' } }),
    }[op];
    const runBefore = w.run(runId).run;
    const snapshot = w.snapshot();

    if (outcome === 'run_already_terminal' || outcome === 'run_already_exists') {
      expectRejected(w, call, outcome);
      return;
    }
    const result = call() as Committed<unknown>;
    switch (outcome) {
      case 'unchanged':
      case 'same run':
        expect(result.value).toEqual(runBefore);
        expect(result.changes).toBeUndefined();
        expect(result.effects ?? []).toEqual([]);
        expect(w.snapshot()).toBe(snapshot);
        break;
      case 'canceled':
        expect(w.run(runId).run.state).toBe('canceled');
        expect(result.value).toEqual(w.run(runId).run);
        break;
      case 'accepted':
        if (op === 'evaluation of the root') {
          expect(types(result.committed)).toEqual(['node_evaluated']);
          expect(w.record(rootId).nodeRun.evaluation_result).toEqual({ status: 'success' });
          expect(w.run(runId).run).toEqual(runBefore);
        } else {
          expect(result.value).toHaveLength(1);
        }
        break;
      default:
        throw new Error(`unexpected outcome ${outcome}`);
    }
  });

  it('cancel of a running Run cancels every unfinished NodeRun; running ones get cancel_execution', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const a = w.child(runId, rootId, 'composite.a');
    const b = w.child(runId, rootId, 'atomic.b');
    const c = w.child(runId, rootId, 'atomic.c');
    const a1 = w.child(runId, a, 'atomic.a1');
    w.complete(c, { state: 'succeeded', outputs: { v: 1 } });
    w.setRunning(rootId);
    w.setRunning(b);
    const runningBefore = [w.record(rootId).nodeRun, w.record(b).nodeRun];
    const cBefore = w.record(c);

    const result = w.cancel(runId);
    const run = w.run(runId).run;
    expect(run.state).toBe('canceled');
    expect(run.ended_at).toBeDefined();
    expect(result.value).toEqual(run);
    expect((result.changes?.nodeRuns ?? []).map((r) => r.nodeRun.node_run_id)).toEqual([rootId, a, b, a1]);
    for (const id of [rootId, a, b, a1]) {
      const record = w.record(id);
      expect(record.nodeRun.state).toBe('canceled');
      expect(record.nodeRun.ended_at).toBe(run.ended_at);
      expect(record.endedByCoordinator).toBe(true);
      expect(completionError(record.nodeRun)?.code).toBe('run_canceled');
    }
    expect(w.record(c)).toEqual(cBefore);
    expect(result.effects).toEqual([
      { type: 'cancel_execution', nodeRun: runningBefore[0] },
      { type: 'cancel_execution', nodeRun: runningBefore[1] },
      { type: 'disarm_deadline', runId },
    ]);
    expect(result.committed).toHaveLength(1);
    const event = result.committed[0]!;
    expect(event.type).toBe('run_completed');
    expect(event).not.toHaveProperty('node_run_id');
    expect(event.data).toMatchObject({
      state: 'canceled',
      reason: 'run_canceled',
      canceled_node_run_count: 4,
    });

    // Later: creates are 409, completions change nothing, a second cancel is a no-op.
    expectRejected(w, () => w.create(runId, a, [spec('atomic.late')]), 'run_already_terminal');
    expect(w.complete(b, { state: 'succeeded', outputs: { late: 1 } }).value).toBe('unchanged');
    expect(w.complete(rootId, { state: 'succeeded' }).value).toBe('unchanged');
    expect(w.cancel(runId).changes).toBeUndefined();
    expect(w.run(runId).run.state).toBe('canceled');
  });

  it('budget expiry ends the Run failed with rc.completion_error budget_exceeded', () => {
    const w = new World();
    const { runId, rootId } = w.start({ constraints: { budgets: { max_wall_time_ms: 500 } } });
    const result = w.expire(runId, 500);
    const run = w.run(runId).run;
    expect(run.state).toBe('failed');
    expect(run.extensions?.[EXT.completionError]).toMatchObject({
      code: 'budget_exceeded',
      details: { budget: 'max_wall_time_ms', limit: 500 },
    });
    expect(w.record(rootId).nodeRun.state).toBe('canceled');
    expect(completionError(w.record(rootId).nodeRun)?.code).toBe('budget_exceeded');
    expect(result.committed[0]!.data).toMatchObject({ state: 'failed', reason: 'budget_exceeded' });
  });

  it('cancel and expiry of an unknown Run are run_not_found', () => {
    const w = new World();
    expectRejected(w, () => w.cancel('run_nope'), 'run_not_found');
    expectRejected(w, () => w.expire('run_nope'), 'run_not_found');
  });

  it('start_run creates a running Run with a queued root, dispatches it, arms the deadline', () => {
    const w = new World();
    const { runId, rootId, decision } = w.start({
      root_node_type_ref: ref('atomic.root'),
      input: { q: 1 },
      constraints: { budgets: { max_wall_time_ms: 60_000 } },
    });
    const run = w.run(runId);
    expect(run.run).toMatchObject({ run_id: runId, state: 'running', root_node_run_id: rootId });
    expect(run.run).not.toHaveProperty('ended_at');
    const root = w.record(rootId);
    expect(root.depth).toBe(0);
    expect(root.nodeRun).toMatchObject({ state: 'queued', kind: 'atomic', inputs: { q: 1 }, run_id: runId });
    expect(root.nodeRun).not.toHaveProperty('parent_node_run_id');
    const startedAt = Date.parse(run.run.started_at!);
    expect(decision.effects).toEqual([
      { type: 'dispatch', nodeRunId: rootId },
      { type: 'arm_deadline', runId, at: startedAt + 60_000 },
    ]);
  });

  it('start_run identical retry is recognised regardless of key order', () => {
    const w = new World();
    const { runId, request } = w.start({ input: { a: 1, b: 2 }, run_context: { tenant_id: 't' } });
    const reordered = {
      run_context: { tenant_id: 't' },
      input: { b: 2, a: 1 },
      root_node_type_ref: { version: request.root_node_type_ref.version, node_type_id: 'composite.root' },
      run_id: runId,
    };
    const retry = w.start(reordered, runId).decision;
    expect(retry.changes).toBeUndefined();
    expect(retry.value).toEqual(w.run(runId).run);
  });
});

// ---------------------------------------------------------------------------------------------
// create_node_runs checks
// ---------------------------------------------------------------------------------------------

describe('create_node_runs checks, in order', () => {
  /** Each setup violates the expected check and (where possible) every later one too. */
  const cases: [
    string,
    ErrorCode,
    (w: World) => { runId: string; parentId: string; specs: NodeRunCreateSpec[] },
  ][] = [
    [
      'unknown run (parent unknown too)',
      'run_not_found',
      () => ({ runId: 'run_missing', parentId: 'node_run_missing', specs: [spec('atomic.x')] }),
    ],
    [
      'terminal run (parent unknown too)',
      'run_already_terminal',
      (w) => {
        const { runId } = w.start();
        w.cancel(runId);
        return { runId, parentId: 'node_run_missing', specs: [spec('atomic.x')] };
      },
    ],
    [
      'unknown parent',
      'parent_node_run_not_found',
      (w) => ({ runId: w.start().runId, parentId: 'node_run_missing', specs: [spec('atomic.x')] }),
    ],
    [
      'parent in another run (terminal and atomic there)',
      'parent_node_run_mismatch',
      (w) => {
        const { runId } = w.start();
        const other = w.start({ root_node_type_ref: ref('atomic.root') });
        w.complete(other.rootId, { state: 'succeeded' });
        return { runId, parentId: other.rootId, specs: [spec('atomic.x')] };
      },
    ],
    [
      'terminal parent (atomic too)',
      'parent_node_run_terminal',
      (w) => {
        const { runId, rootId } = w.start();
        const leaf = w.child(runId, rootId, 'atomic.leaf');
        w.complete(leaf, { state: 'succeeded' });
        return { runId, parentId: leaf, specs: [spec('atomic.x')] };
      },
    ],
    [
      'atomic parent',
      'parent_node_run_invalid',
      (w) => {
        const { runId, rootId } = w.start();
        return { runId, parentId: w.child(runId, rootId, 'atomic.leaf'), specs: [spec('atomic.x')] };
      },
    ],
    [
      'atomic root parent',
      'parent_node_run_invalid',
      (w) => {
        const { runId, rootId } = w.start({ root_node_type_ref: ref('atomic.root') });
        return { runId, parentId: rootId, specs: [spec('atomic.x')] };
      },
    ],
    [
      'the same idempotency key twice in one request',
      'invalid_request',
      (w) => {
        const { runId, rootId } = w.start();
        return {
          runId,
          parentId: rootId,
          specs: [
            spec('atomic.x', { idempotency_key: 'k' }),
            spec('atomic.y'),
            spec('atomic.z', { idempotency_key: 'k' }),
          ],
        };
      },
    ],
  ];

  it.each(cases)('%s → %s', (_label, code, setup) => {
    const w = new World();
    const { runId, parentId, specs } = setup(w);
    expectRejected(w, () => w.create(runId, parentId, specs), code);
  });

  it.each([
    ['unknown kind (no prefix)', 'custom.step'],
    ['composite', 'composite.step'],
  ])('a parent of %s kind is accepted', (_label, type) => {
    const w = new World();
    const { runId, rootId } = w.start();
    const parent = w.child(runId, rootId, type);
    expect(w.record(parent).nodeRun.kind).toBe(kindFromPrefix(type));
    expect(w.create(runId, parent, [spec('atomic.x')]).value).toHaveLength(1);
  });

  it('new children are queued, carry run/parent ids, kind and depth, and are dispatched in order', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const result = w.create(runId, rootId, [
      spec('atomic.one', { inputs: { n: 1 } }),
      spec('composite.two'),
      spec('other.three'),
    ]);
    const ids = result.value.map((n) => n.node_run_id);
    expect(result.value.map((n) => [n.state, n.run_id, n.parent_node_run_id, n.kind])).toEqual([
      ['queued', runId, rootId, 'atomic'],
      ['queued', runId, rootId, 'composite'],
      ['queued', runId, rootId, undefined],
    ]);
    expect(result.value[0]!.inputs).toEqual({ n: 1 });
    expect(result.value[2]).not.toHaveProperty('kind');
    for (const id of ids) expect(w.record(id).depth).toBe(1);
    expect(w.record(rootId).childCount).toBe(ids.length);
    expect(w.view(runId).children(rootId)).toEqual(ids);
    expect(w.record(rootId).rounds).toBe(1);
    expect(result.effects).toEqual(ids.map((nodeRunId) => ({ type: 'dispatch', nodeRunId })));
  });
});

// ---------------------------------------------------------------------------------------------
// Structural limits
// ---------------------------------------------------------------------------------------------

interface Step {
  /** 'root' or the label of a NodeRun created by an earlier step. */
  readonly under: string;
  /** Labels of the composite children this step creates. */
  readonly make: readonly string[];
}
type Violation = { constraint: string; limit: number; attempted: number };

const STRUCTURAL_CASES: [string, ConstraintEnvelope['structural'], Step[], Violation | 'ok'][] = [
  [
    'max_depth 0: no child of the root',
    { max_depth: 0 },
    [{ under: 'root', make: ['a'] }],
    v('max_depth', 0, 1),
  ],
  ['max_depth 1: a child of the root is fine', { max_depth: 1 }, [{ under: 'root', make: ['a', 'b'] }], 'ok'],
  [
    'max_depth 1: no grandchild',
    { max_depth: 1 },
    [
      { under: 'root', make: ['a'] },
      { under: 'a', make: ['a1'] },
    ],
    v('max_depth', 1, 2),
  ],
  [
    'max_depth 2: grandchild fine, great-grandchild not',
    { max_depth: 2 },
    [
      { under: 'root', make: ['a'] },
      { under: 'a', make: ['a1'] },
      { under: 'a1', make: ['a1x'] },
    ],
    v('max_depth', 2, 3),
  ],
  [
    'max_children_per_composite 2: accumulates across rounds',
    { max_children_per_composite: 2 },
    [
      { under: 'root', make: ['a'] },
      { under: 'root', make: ['b'] },
      { under: 'root', make: ['c'] },
    ],
    v('max_children_per_composite', 2, 3),
  ],
  [
    'max_children_per_composite 2: exactly 2 in one round',
    { max_children_per_composite: 2 },
    [{ under: 'root', make: ['a', 'b'] }],
    'ok',
  ],
  [
    'max_children_per_composite 2: 3 in one round',
    { max_children_per_composite: 2 },
    [{ under: 'root', make: ['a', 'b', 'c'] }],
    v('max_children_per_composite', 2, 3),
  ],
  [
    'max_children_per_composite 2: counted per parent',
    { max_children_per_composite: 2 },
    [
      { under: 'root', make: ['a', 'b'] },
      { under: 'a', make: ['a1', 'a2'] },
      { under: 'b', make: ['b1'] },
      { under: 'a', make: ['a3'] },
    ],
    v('max_children_per_composite', 2, 3),
  ],
  [
    'max_total_nodes_per_run 1: the root counts, no child at all',
    { max_total_nodes_per_run: 1 },
    [{ under: 'root', make: ['a'] }],
    v('max_total_nodes_per_run', 1, 2),
  ],
  [
    'max_total_nodes_per_run 3: root + 2 is fine',
    { max_total_nodes_per_run: 3 },
    [{ under: 'root', make: ['a', 'b'] }],
    'ok',
  ],
  [
    'max_total_nodes_per_run 3: counts every NodeRun of the run',
    { max_total_nodes_per_run: 3 },
    [
      { under: 'root', make: ['a'] },
      { under: 'a', make: ['a1'] },
      { under: 'root', make: ['b'] },
    ],
    v('max_total_nodes_per_run', 3, 4),
  ],
  [
    'max_decomposition_rounds_per_node 0: no round at all',
    { max_decomposition_rounds_per_node: 0 },
    [{ under: 'root', make: ['a'] }],
    v('max_decomposition_rounds_per_node', 0, 1),
  ],
  [
    'max_decomposition_rounds_per_node 1: one round of many children',
    { max_decomposition_rounds_per_node: 1 },
    [
      { under: 'root', make: ['a', 'b', 'c'] },
      { under: 'a', make: ['a1'] },
    ],
    'ok',
  ],
  [
    'max_decomposition_rounds_per_node 1: a second round on the same parent',
    { max_decomposition_rounds_per_node: 1 },
    [
      { under: 'root', make: ['a', 'b'] },
      { under: 'root', make: ['c'] },
    ],
    v('max_decomposition_rounds_per_node', 1, 2),
  ],
];

function v(name: string, limit: number, attempted: number): Violation {
  return { constraint: `structural.${name}`, limit, attempted };
}

describe('structural limits', () => {
  it.each(STRUCTURAL_CASES)('%s', (_label, structural, steps, expected) => {
    const w = new World();
    const { runId, rootId } = w.start({ constraints: { structural } });
    const labels = new Map<string, string>([['root', rootId]]);
    steps.forEach((step, index) => {
      const parentId = labels.get(step.under)!;
      const specs = step.make.map((label) => spec(`composite.${label}`));
      const last = index === steps.length - 1;
      if (last && expected !== 'ok') {
        const eventsBefore = w.events(runId).length;
        const error = expectRejected(w, () => w.create(runId, parentId, specs), 'constraint_violation');
        expect(error.details).toEqual(expected);
        expect(w.events(runId)).toHaveLength(eventsBefore);
        return;
      }
      const created = w.create(runId, parentId, specs).value;
      for (const [i, label] of step.make.entries()) labels.set(label, created[i]!.node_run_id);
    });
  });

  it('limits are the Run constraints merged with every ancestor spec (most restrictive wins)', () => {
    const w = new World();
    const { runId, rootId } = w.start({ constraints: { structural: { max_depth: 5 } } });
    const tight = w.child(runId, rootId, 'composite.tight', {
      constraints: { structural: { max_depth: 1, max_children_per_composite: 1 } },
    });
    const loose = w.child(runId, rootId, 'composite.loose', {
      constraints: { structural: { max_depth: 9 } },
    });
    expect(w.record(tight).constraints?.structural).toEqual({ max_depth: 1, max_children_per_composite: 1 });
    expect(w.record(loose).constraints?.structural).toEqual({ max_depth: 5 });
    const error = expectRejected(w, () => w.create(runId, tight, [spec('atomic.x')]), 'constraint_violation');
    expect(error.details).toEqual(v('max_depth', 1, 2));
    // The looser spec does not loosen the Run's limit, and siblings are unaffected by `tight`.
    expect(w.create(runId, loose, [spec('composite.x'), spec('composite.y')]).value).toHaveLength(2);
  });

  it('rounds count only calls that create ≥1 new child: replays and rejected calls do not count', () => {
    const w = new World();
    const { runId, rootId } = w.start({
      constraints: {
        structural: { max_decomposition_rounds_per_node: 2 },
        candidates: { denied_node_type_ids: ['atomic.denied'] },
      },
    });
    const round1 = [spec('atomic.a', { idempotency_key: 'a' }), spec('atomic.b', { idempotency_key: 'b' })];
    w.create(runId, rootId, round1);
    expect(w.record(rootId).rounds).toBe(1);

    // A pure replay: no new child, no round, no event.
    const replay = w.create(runId, rootId, structuredClone(round1));
    expect(replay.changes).toBeUndefined();
    expect(replay.committed).toEqual([]);
    expect(w.record(rootId).rounds).toBe(1);

    // Rejected calls: nothing written, no round.
    expectRejected(w, () => w.create(runId, rootId, [spec('atomic.denied')]), 'constraint_violation');
    expectRejected(
      w,
      () => w.create(runId, rootId, [spec('atomic.a', { idempotency_key: 'a', inputs: { other: 1 } })]),
      'idempotency_conflict',
    );
    expect(w.record(rootId).rounds).toBe(1);

    // A replay plus one new child is one round.
    w.create(runId, rootId, [...structuredClone(round1), spec('atomic.c')]);
    expect(w.record(rootId).rounds).toBe(2);

    const error = expectRejected(
      w,
      () => w.create(runId, rootId, [spec('atomic.d')]),
      'constraint_violation',
    );
    expect(error.details).toEqual(v('max_decomposition_rounds_per_node', 2, 3));
    // Replays stay possible at the limit.
    expect(w.create(runId, rootId, structuredClone(round1)).value).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Candidate allow/deny lists
// ---------------------------------------------------------------------------------------------

describe('candidate allow/deny lists', () => {
  const cases: [string, ConstraintEnvelope['candidates'], string, 'ok' | string][] = [
    ['allowed type', { allowed_node_type_ids: ['atomic.ok', 'atomic.fine'] }, 'atomic.ok', 'ok'],
    [
      'type outside the allow-list',
      { allowed_node_type_ids: ['atomic.ok'] },
      'atomic.other',
      'candidates.allowed_node_type_ids',
    ],
    [
      'empty allow-list allows nothing',
      { allowed_node_type_ids: [] },
      'atomic.ok',
      'candidates.allowed_node_type_ids',
    ],
    [
      'denied type',
      { denied_node_type_ids: ['atomic.bad'] },
      'atomic.bad',
      'candidates.denied_node_type_ids',
    ],
    ['type not denied', { denied_node_type_ids: ['atomic.bad'] }, 'atomic.ok', 'ok'],
    [
      'deny wins over allow',
      { allowed_node_type_ids: ['atomic.bad'], denied_node_type_ids: ['atomic.bad'] },
      'atomic.bad',
      'candidates.denied_node_type_ids',
    ],
  ];

  it.each(cases)('%s → %s', (_label, candidates, type, expected) => {
    const w = new World();
    const { runId, rootId } = w.start({ constraints: { candidates } });
    if (expected === 'ok') {
      expect(w.create(runId, rootId, [spec(type)]).value).toHaveLength(1);
      return;
    }
    const error = expectRejected(w, () => w.create(runId, rootId, [spec(type)]), 'constraint_violation');
    expect(error.details).toMatchObject({ constraint: expected, attempted: type });
  });

  it.each([
    ['an allow-list without it', { allowed_node_type_ids: ['atomic.ok'] }],
    ['a deny-list with it', { denied_node_type_ids: ['composite.root'] }],
  ])('the root is not checked against %s', (_label, candidates) => {
    const w = new World();
    const { runId, rootId } = w.start({ constraints: { candidates } });
    expect(w.run(runId).run.state).toBe('running');
    expect(w.record(rootId).nodeRun.node_type_ref.node_type_id).toBe('composite.root');
  });

  it('one denied spec rejects the whole batch (all-or-nothing)', () => {
    const w = new World();
    const { runId, rootId } = w.start({
      constraints: { candidates: { denied_node_type_ids: ['atomic.bad'] } },
    });
    const error = expectRejected(
      w,
      () => w.create(runId, rootId, [spec('atomic.ok'), spec('atomic.ok2'), spec('atomic.bad')]),
      'constraint_violation',
    );
    expect(error.details).toMatchObject({ index: 2 });
    expect(w.record(rootId).childCount).toBe(0);
    expect(w.view(runId).children(rootId)).toEqual([]);
  });

  it("a child's candidate constraints apply to its own children only", () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const narrow = w.child(runId, rootId, 'composite.narrow', {
      constraints: { candidates: { allowed_node_type_ids: ['atomic.x'] } },
    });
    expect(w.create(runId, narrow, [spec('atomic.x')]).value).toHaveLength(1);
    expectRejected(w, () => w.create(runId, narrow, [spec('atomic.y')]), 'constraint_violation');
    expect(w.create(runId, rootId, [spec('atomic.y')]).value).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

describe('idempotency of create_node_runs', () => {
  function withKeyedChild() {
    const w = new World();
    const { runId, rootId } = w.start();
    const original = spec('atomic.step', { idempotency_key: 'k1', inputs: { a: 1, nested: { b: 2 } } });
    const [child] = w.create(runId, rootId, [original]).value;
    return { w, runId, rootId, original, child: child! };
  }

  it('same key + same spec → the existing NodeRun, no changes, no events, no dispatch', () => {
    const { w, runId, rootId, original, child } = withKeyedChild();
    const snapshot = w.snapshot();
    const replay = w.create(runId, rootId, [structuredClone(original)]);
    expect(replay.value).toEqual([child]);
    expect(replay.changes).toBeUndefined();
    expect(replay.effects ?? []).toEqual([]);
    expect(replay.committed).toEqual([]);
    expect(w.snapshot()).toBe(snapshot);
  });

  it('a replay returns the NodeRun in its current state', () => {
    const { w, runId, rootId, original, child } = withKeyedChild();
    w.complete(child.node_run_id, { state: 'succeeded', outputs: { done: true } });
    const [replayed] = w.create(runId, rootId, [original]).value;
    expect(replayed).toEqual(w.record(child.node_run_id).nodeRun);
    expect(replayed!.state).toBe('succeeded');
  });

  it.each([
    ['inputs', { inputs: { a: 2, nested: { b: 2 } } }],
    ['nested inputs', { inputs: { a: 1, nested: { b: 3 } } }],
    ['node_type_ref', { node_type_ref: ref('atomic.other') }],
    ['version', { node_type_ref: ref('atomic.step', '2.0.0') }],
    ['constraints', { constraints: { structural: { max_depth: 3 } } }],
    ['metadata', { metadata: { labels: { x: 'y' } } }],
  ])('same key + different %s → 409 idempotency_conflict, nothing committed', (_label, change) => {
    const { w, runId, rootId, original } = withKeyedChild();
    expectRejected(
      w,
      () => w.create(runId, rootId, [spec('atomic.new'), { ...original, ...change }]),
      'idempotency_conflict',
    );
  });

  it('keys are scoped to (run, parent, key): the same key under another parent creates a new NodeRun', () => {
    const { w, runId, rootId, original, child } = withKeyedChild();
    const other = w.child(runId, rootId, 'composite.other');
    const [underOther] = w.create(runId, other, [original]).value;
    expect(underOther!.node_run_id).not.toBe(child.node_run_id);
    expect(underOther!.parent_node_run_id).toBe(other);

    const second = w.start();
    const [inOtherRun] = w.create(second.runId, second.rootId, [original]).value;
    expect(inOtherRun!.node_run_id).not.toBe(child.node_run_id);
    expect(inOtherRun!.run_id).toBe(second.runId);
  });

  it('response order = request order when a request mixes replays and new specs', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const k1 = spec('atomic.one', { idempotency_key: 'k1' });
    const k2 = spec('atomic.two', { idempotency_key: 'k2' });
    const [c1, c2] = w.create(runId, rootId, [k1, k2]).value;
    const result = w.create(runId, rootId, [
      spec('atomic.new1'),
      k2,
      spec('atomic.new2', { idempotency_key: 'k3' }),
      k1,
    ]);
    const ids = result.value.map((n) => n.node_run_id);
    expect(ids[1]).toBe(c2!.node_run_id);
    expect(ids[3]).toBe(c1!.node_run_id);
    expect(result.value.map((n) => n.node_type_ref.node_type_id)).toEqual([
      'atomic.new1',
      'atomic.two',
      'atomic.new2',
      'atomic.one',
    ]);
    expect(new Set(ids).size).toBe(4);
    // Only the two new ones are evented, dispatched and counted.
    expect(typed(result.committed)).toEqual([
      ['composite_decomposed', rootId],
      ['node_run_assigned', ids[0]],
      ['node_run_assigned', ids[2]],
    ]);
    expect(result.committed[0]!.data).toMatchObject({ node_run_count: 2 });
    expect(result.effects).toEqual([
      { type: 'dispatch', nodeRunId: ids[0] },
      { type: 'dispatch', nodeRunId: ids[2] },
    ]);
    expect(w.record(rootId).childCount).toBe(4);
    expect(w.view(runId).children(rootId)).toEqual([c1!.node_run_id, c2!.node_run_id, ids[0], ids[2]]);
  });

  it('specs without a key are never deduplicated', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const plain = spec('atomic.x', { inputs: { same: true } });
    const first = w.create(runId, rootId, [plain, plain]).value;
    const second = w.create(runId, rootId, [plain]).value;
    expect(new Set([...first, ...second].map((n) => n.node_run_id)).size).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Event sequences
// ---------------------------------------------------------------------------------------------

describe('event sequences', () => {
  it('start: run_started (no node_run_id), node_run_assigned (root)', () => {
    const w = new World();
    const { runId, rootId, decision } = w.start();
    expect(typed(decision.committed)).toEqual([
      ['run_started', undefined],
      ['node_run_assigned', rootId],
    ]);
    expect(decision.committed[0]).not.toHaveProperty('node_run_id');
    expect(decision.committed[0]!.data).toEqual({ root_node_run_id: rootId });
    expect(decision.committed[1]!.data).toEqual({ root: true });
    expect(w.events(runId).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('create: composite_decomposed, then per child node_run_assigned [+ candidate_set_generated]', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const result = w.create(runId, rootId, [
      spec('atomic.plain'),
      spec('atomic.candidate', { candidate_set_id: 'cs1' }),
      spec('atomic.plain2'),
    ]);
    const [a, b, c] = result.value.map((n) => n.node_run_id);
    expect(typed(result.committed)).toEqual([
      ['composite_decomposed', rootId],
      ['node_run_assigned', a],
      ['node_run_assigned', b],
      ['candidate_set_generated', b],
      ['node_run_assigned', c],
    ]);
    expect(result.committed[0]!.data).toEqual({ node_run_count: 3, round: 1 });
    expect(result.committed[1]!.data).toEqual({ parent_node_run_id: rootId });
    expect(result.committed[3]!.data).toEqual({ candidate_set_id: 'cs1' });
    expect(result.committed.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7]);
  });

  it('create with a binding_decision without a candidate set: node_run_assigned, subtask_mapped', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const binding = { subtask_id: 's1', chosen_node_type_ref: ref('atomic.bound') };
    const result = w.create(runId, rootId, [spec('atomic.bound', { binding_decision: binding })]);
    const id = result.value[0]!.node_run_id;
    expect(typed(result.committed)).toEqual([
      ['composite_decomposed', rootId],
      ['node_run_assigned', id],
      ['subtask_mapped', id],
    ]);
    expect(result.committed[2]!.data).toEqual(binding);
  });

  it('create with both: node_run_assigned, subtask_mapped, candidate_set_generated (design §3: keep the JARVIS sequence)', () => {
    // coordinator.md §3 says to keep the sequences of reference-behavior.md §3.11, which lists
    // `node_run_assigned`, `subtask_mapped`, `candidate_set_generated` for each child (also §3.2 step 10).
    const w = new World();
    const { runId, rootId } = w.start();
    const binding = { subtask_id: 's1', candidate_set_id: 'cs1', chosen_node_type_ref: ref('atomic.bound') };
    const result = w.create(runId, rootId, [spec('atomic.bound', { binding_decision: binding })]);
    const id = result.value[0]!.node_run_id;
    expect(typed(result.committed)).toEqual([
      ['composite_decomposed', rootId],
      ['node_run_assigned', id],
      ['subtask_mapped', id],
      ['candidate_set_generated', id],
    ]);
    const candidateEvent = result.committed.find((e) => e.type === 'candidate_set_generated');
    expect(candidateEvent!.data).toEqual({ candidate_set_id: 'cs1', subtask_id: 's1' });
  });

  it('complete of an atomic non-root: atomic_executed only', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'atomic.leaf');
    const result = w.complete(id, { state: 'failed' });
    expect(typed(result.committed)).toEqual([['atomic_executed', id]]);
    expect(result.committed[0]!.data).toEqual({ state: 'failed' });
  });

  it('complete of a NodeRun of unknown kind: no event', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const id = w.child(runId, rootId, 'custom.leaf');
    expect(w.complete(id, { state: 'succeeded' }).committed).toEqual([]);
  });

  it('root completion: run_completed on the root', () => {
    const w = new World();
    const { rootId } = w.start();
    expect(typed(w.complete(rootId, { state: 'succeeded' }).committed)).toEqual([['run_completed', rootId]]);
  });

  it('cancel: run_completed without node_run_id', () => {
    const w = new World();
    const { runId } = w.start();
    const result = w.cancel(runId);
    expect(types(result.committed)).toEqual(['run_completed']);
    expect(result.committed[0]).not.toHaveProperty('node_run_id');
  });

  it('a whole run: seq is 1..n with no gaps across operations', () => {
    const w = new World();
    const { runId, rootId } = w.start();
    const [a] = w.create(runId, rootId, [spec('atomic.a')]).value;
    w.evaluate(a!.node_run_id, { evaluation_result: { status: 'success' } });
    w.complete(a!.node_run_id, { state: 'succeeded' });
    w.complete(rootId, { state: 'succeeded' });
    const events = w.events(runId);
    expect(types(events)).toEqual([
      'run_started',
      'node_run_assigned',
      'composite_decomposed',
      'node_run_assigned',
      'node_evaluated',
      'atomic_executed',
      'run_completed',
    ]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });
});

// ---------------------------------------------------------------------------------------------
// mergeConstraints
// ---------------------------------------------------------------------------------------------

describe('mergeConstraints', () => {
  const cases: [string, (ConstraintEnvelope | undefined)[], ConstraintEnvelope | undefined][] = [
    ['no input', [], undefined],
    ['only undefined inputs', [undefined, undefined], undefined],
    ['an empty envelope', [{}], undefined],
    ['extensions only (dropped)', [{ extensions: { 'x.y': 1 } }], undefined],
    [
      'extensions dropped, sections kept',
      [{ structural: { max_depth: 2 }, extensions: { 'x.y': 1 } }],
      { structural: { max_depth: 2 } },
    ],
    [
      'numeric limits: minimum per field, 0 included',
      [
        { structural: { max_depth: 3, max_children_per_composite: 5 }, budgets: { max_steps: 10 } },
        undefined,
        {
          structural: { max_depth: 0, max_total_nodes_per_run: 7 },
          budgets: { max_steps: 4, max_cost: 2.5 },
        },
        { structural: { max_decomposition_rounds_per_node: 2 }, budgets: { max_wall_time_ms: 100 } },
      ],
      {
        structural: {
          max_depth: 0,
          max_children_per_composite: 5,
          max_total_nodes_per_run: 7,
          max_decomposition_rounds_per_node: 2,
        },
        budgets: { max_steps: 4, max_cost: 2.5, max_wall_time_ms: 100 },
      },
    ],
    [
      'allow-lists intersect (sorted, deduplicated)',
      [
        { candidates: { allowed_node_type_ids: ['c', 'a', 'b', 'a'] } },
        { candidates: { allowed_node_type_ids: ['b', 'c', 'd'] } },
      ],
      { candidates: { allowed_node_type_ids: ['b', 'c'] } },
    ],
    [
      'a single allow-list is kept (sorted)',
      [
        { candidates: { allowed_node_type_ids: ['z', 'y'] } },
        { candidates: { max_candidates_per_subtask: 3 } },
      ],
      { candidates: { allowed_node_type_ids: ['y', 'z'], max_candidates_per_subtask: 3 } },
    ],
    [
      'disjoint allow-lists intersect to []',
      [{ candidates: { allowed_node_type_ids: ['a'] } }, { candidates: { allowed_node_type_ids: ['b'] } }],
      { candidates: { allowed_node_type_ids: [] } },
    ],
    [
      'deny-lists unite (sorted, deduplicated)',
      [
        { candidates: { denied_node_type_ids: ['z', 'a'] } },
        { candidates: { denied_node_type_ids: ['m', 'a'] } },
      ],
      { candidates: { denied_node_type_ids: ['a', 'm', 'z'] } },
    ],
    [
      'max_candidates_per_subtask: minimum',
      [{ candidates: { max_candidates_per_subtask: 5 } }, { candidates: { max_candidates_per_subtask: 2 } }],
      { candidates: { max_candidates_per_subtask: 2 } },
    ],
    [
      'require_approval: true if any is',
      [{ gates: { require_approval: false } }, { gates: { require_approval: true } }, { gates: {} }],
      { gates: { require_approval: true } },
    ],
    [
      'require_approval: false if all given are false',
      [{ gates: { require_approval: false } }, { gates: { require_approval: false } }],
      { gates: { require_approval: false } },
    ],
    [
      'side_effect_class: write beats read',
      [{ gates: { side_effect_class: 'read' } }, { gates: { side_effect_class: 'write' } }],
      { gates: { side_effect_class: 'write' } },
    ],
    [
      'side_effect_class: irreversible beats everything',
      [
        { gates: { side_effect_class: 'write' } },
        { gates: { side_effect_class: 'irreversible' } },
        { gates: { side_effect_class: 'read' } },
      ],
      { gates: { side_effect_class: 'irreversible' } },
    ],
    [
      'side_effect_class: read alone stays read',
      [{ gates: { side_effect_class: 'read' } }, { gates: { require_approval: false } }],
      { gates: { side_effect_class: 'read', require_approval: false } },
    ],
  ];

  it.each(cases)('%s', (_label, inputs, expected) => {
    expect(mergeConstraints(...inputs)).toEqual(expected);
  });

  it('does not modify its inputs', () => {
    const a: ConstraintEnvelope = {
      candidates: { allowed_node_type_ids: ['b', 'a'] },
      extensions: { 'x.y': 1 },
    };
    const copy = structuredClone(a);
    mergeConstraints(a, { candidates: { allowed_node_type_ids: ['a'] } });
    expect(a).toEqual(copy);
  });
});

// ---------------------------------------------------------------------------------------------
// Client ids and kinds
// ---------------------------------------------------------------------------------------------

describe('assertClientId', () => {
  it.each([
    ['slash', 'run/1'],
    ['colon', 'run:1'],
    ['colon suffix', 'run_1:cancel'],
    ['space', 'run 1'],
    ['tab', 'run\t1'],
    ['newline', 'run\n1'],
    ['leading space', ' run'],
    ['no-break space', 'run\u00a01'],
    ['NUL', 'run\u00001'],
    ['escape', 'run\u001b1'],
    ['DEL', 'run\u007f1'],
    ['C1 control', 'run\u00851'],
    ['empty', ''],
    ['257 characters', 'r'.repeat(MAX_CLIENT_ID_LENGTH + 1)],
  ])('rejects %s with 400 invalid_request', (_label, id) => {
    const error = expectArpError(() => assertClientId('run_id', id), 'invalid_request');
    expect(error.status).toBe(400);
  });

  it.each([
    ['simple', 'run-1'],
    ['generated shape', 'run_0123456789abcdef0123456789abcdef'],
    ['dots, tildes, mixed case', 'My.Run~2026_01'],
    ['a uuid', '3f2b8c4e-9a1d-4e6f-8b2a-1c3d5e7f9a0b'],
    ['one character', 'r'],
    ['exactly 256 characters', 'r'.repeat(MAX_CLIENT_ID_LENGTH)],
  ])('accepts %s', (_label, id) => {
    expect(() => assertClientId('run_id', id)).not.toThrow();
  });

  it('MAX_CLIENT_ID_LENGTH is 256', () => {
    expect(MAX_CLIENT_ID_LENGTH).toBe(256);
  });
});

describe('kindFromPrefix', () => {
  it.each([
    ['atomic.echo', 'atomic'],
    ['composite.planner', 'composite'],
    ['Atomic.Echo', 'atomic'],
    ['COMPOSITE.X', 'composite'],
    ['atomic.', 'atomic'],
    ['atomic', undefined],
    ['composite', undefined],
    ['atomicx.echo', undefined],
    ['my.atomic.echo', undefined],
    ['jarvis.core.echo', undefined],
    ['', undefined],
  ])('%j → %s', (id, kind) => {
    expect(kindFromPrefix(id)).toBe(kind);
  });
});
