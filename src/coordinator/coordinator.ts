/**
 * The I/O shell around the pure core: resolve what the decision needs, let the store commit the
 * decision atomically, then carry out its effects (dispatch, executor cancels, budget deadlines).
 */

import { decideComplete, decideEvaluation, nodeRunNeeds } from '../core/completion.js';
import { decidePolicy } from '../core/dispatch.js';
import { rejectReservedExtensions } from '../core/extensions.js';
import { assertClientId, type IdGenerator, randomIds } from '../core/ids.js';
import {
  type Decision,
  type Effect,
  isTerminal,
  type Needs,
  type NodeRunRecord,
  type RunView,
} from '../core/model.js';
import { createNeeds, decideCreateNodeRuns } from '../core/node-runs.js';
import { decideStartRun, decideTerminateRun, RUN_ONLY } from '../core/runs.js';
import { nodeRunNotFound, runNotFound } from '../errors.js';
import type {
  NodeKind,
  NodeRun,
  NodeRunCompleteRequest,
  NodeRunEvaluationReportRequest,
  NodeRunsCreateRequest,
  NodeTypeRef,
  Run,
  RunContext,
  RunStartRequest,
} from '../gen/contract.js';
import type { CommittedDecision, Store } from '../store/store.js';
import { recordedTrace, type TraceParent } from '../tracing/w3c.js';
import type { PolicyPort } from './policy.js';
import {
  alarmAt,
  type Clock,
  type ExecutionPort,
  type KindResolver,
  noExecution,
  prefixKinds,
  systemClock,
  systemTimers,
  type Timers,
  wallTimers,
} from './ports.js';
import { Reconciler } from './reconciler.js';

export interface CoordinatorDeps {
  readonly store: Store;
  readonly clock?: Clock;
  readonly ids?: IdGenerator;
  readonly kinds?: KindResolver;
  /** Where queued NodeRuns go; a factory receives the coordinator (dispatchers commit through it). */
  readonly execution?: ExecutionPort | ((coordinator: Coordinator) => ExecutionPort);
  /** The `run.start` checkpoint; without one, Runs start without a policy decision. */
  readonly policy?: PolicyPort;
  readonly timers?: Timers;
  /** Limits on what callers can make the coordinator hold. */
  readonly limits?: CoordinatorLimits;
  /** Called when background work (deadlines, effects) fails; it never reaches a client. */
  readonly onBackgroundError?: BackgroundErrorHandler;
  /** How this process recovers what stopped processes left, when the store is shared. */
  readonly recovery?: RecoverySettings;
  /** Told of what an operator should hear about (the app logs each at warn); never throws back. */
  readonly onEvent?: (event: CoordinatorEvent) => void;
  /** Told of every decision this coordinator committed (metrics); see `CommitObserver`. */
  readonly onCommitted?: CommitObserver;
}

/**
 * Something that went wrong with a NodeRun's work, for logs: a dispatch that failed, a policy deny,
 * an executor that did not answer in time, an execution whose owning instance was lost. Carries
 * ids and codes only (no URLs, no payloads).
 */
export interface CoordinatorEvent {
  readonly type: 'dispatch_failed' | 'policy_denied' | 'executor_timeout' | 'execution_owner_lost';
  readonly runId: string;
  readonly nodeRunId: string;
  /** The code recorded on the NodeRun (`rc.completion_error.code`), or the PDP's reason code. */
  readonly code?: string;
  /** `run.start` or `node.run.execute`, for policy denies. */
  readonly action?: string;
  /** The Run's `run_context.trace.trace_id`, when it has one. */
  readonly traceId?: string;
  /** The id of the request that started the Run (`run_context.trace.request_id`), when recorded. */
  readonly reqId?: string;
}

/** Told of background work that failed: what it was, and the Run and NodeRun when there is one. */
export type BackgroundErrorHandler = (error: unknown, context: string, ids?: BackgroundIds) => void;

export interface BackgroundIds {
  readonly runId?: string;
  readonly nodeRunId?: string;
}

/** The trace id a Run's context carries, for events about it. */
export function traceOf(runContext: RunContext | undefined): { traceId?: string; reqId?: string } {
  const traceId = runContext?.trace?.trace_id;
  const reqId = runContext?.trace?.request_id;
  return {
    ...(typeof traceId === 'string' && traceId !== '' ? { traceId } : {}),
    // The request that started the Run: background work has no request of its own.
    ...(typeof reqId === 'string' && reqId !== '' ? { reqId } : {}),
  };
}

/**
 * Told of a committed decision, with the state each NodeRun it updated was in before it (the
 * decision's records only say where they ended). Never throws into the commit's caller.
 */
export type CommitObserver = (
  committed: CommittedDecision<unknown>,
  before: ReadonlyMap<string, NodeRun['state']>,
) => void;

export interface RecoverySettings {
  /** Time between reconciler passes. */
  readonly intervalMs: number;
  /** Lease length of the NodeRuns this process holds (the store's leases must match). */
  readonly leaseTtlMs: number;
  /** Finished Runs older than this are deleted; 0 keeps them. */
  readonly retentionMs: number;
}

export const defaultRecovery: RecoverySettings = {
  intervalMs: 5_000,
  leaseTtlMs: 30_000,
  retentionMs: 7 * 86_400_000,
};

export interface CoordinatorLimits {
  /** Unfinished Runs at most; a new Run beyond it is a retryable 503. */
  readonly maxLiveRuns?: number;
  /** Wall-time budget of a Run that sets none. */
  readonly defaultMaxWallTimeMs?: number;
}

export class Coordinator {
  readonly store: Store;
  readonly #clock: Clock;
  readonly #ids: IdGenerator;
  readonly #kinds: KindResolver;
  readonly #execution: ExecutionPort;
  readonly #policy: PolicyPort | undefined;
  readonly #timers: Timers;
  readonly #onBackgroundError: BackgroundErrorHandler;
  readonly #onEvent: ((event: CoordinatorEvent) => void) | undefined;
  readonly #limits: CoordinatorLimits;
  readonly #reconciler: Reconciler | undefined;
  readonly #onCommitted: CommitObserver | undefined;
  /** Run id → the function that disarms its wall-time deadline. */
  readonly #deadlines = new Map<string, () => void>();
  #stopping = false;
  #released: Promise<void> | undefined;

  constructor(deps: CoordinatorDeps) {
    this.store = deps.store;
    this.#clock = deps.clock ?? systemClock;
    this.#ids = deps.ids ?? randomIds;
    this.#kinds = deps.kinds ?? prefixKinds;
    this.#execution =
      typeof deps.execution === 'function' ? deps.execution(this) : (deps.execution ?? noExecution);
    this.#policy = deps.policy;
    this.#timers = deps.timers ?? systemTimers;
    this.#onBackgroundError = deps.onBackgroundError ?? (() => {});
    this.#onEvent = deps.onEvent;
    this.#limits = deps.limits ?? {};
    this.#onCommitted = deps.onCommitted;
    const recovery = deps.store.recovery;
    this.#reconciler =
      recovery &&
      new Reconciler(this, recovery, {
        ...defaultRecovery,
        ...deps.recovery,
        dispatching: this.#execution !== noExecution,
        // Its schedule runs on real time whatever timers are injected or installed for deadlines.
        timers: wallTimers,
        onError: this.#onBackgroundError,
      });
  }

  /**
   * Starts background work that survives any one process: with a shared store, the reconciler's
   * first pass (awaited) and its schedule.
   */
  async start(): Promise<void> {
    await this.#reconciler?.start();
  }

  /** The reconciler, when the store is shared by several processes. */
  get reconciler(): Reconciler | undefined {
    return this.#reconciler;
  }

  /** `origin`: the caller's trace and request id, recorded in `run_context.trace` unless it sets one. */
  async startRun(
    request: RunStartRequest,
    origin?: { trace?: TraceParent; requestId?: string },
  ): Promise<Run> {
    // An empty run_id means "generate one", as in the reference implementations.
    if (request.run_id) assertClientId('run_id', request.run_id);
    rejectReservedExtensions(['/extensions', request.extensions]);
    const runId = request.run_id || this.#ids.runId();
    const rootKind = await this.#kinds.kindOf(request.root_node_type_ref);
    const rootNodeRunId = this.#ids.nodeRunId();
    const { maxLiveRuns, defaultMaxWallTimeMs } = this.#limits;
    const full =
      maxLiveRuns !== undefined && (await this.store.countLiveRuns()) >= maxLiveRuns
        ? { limit: maxLiveRuns }
        : undefined;
    // A local allow is known without asking: it is recorded in the start's own commit.
    const local = this.#policy?.local?.decision === 'allow' ? this.#policy.local : undefined;
    const runContext = recordedTrace(request.run_context, origin?.trace, origin?.requestId);
    const started = await this.#mutate(runId, RUN_ONLY, (view) =>
      decideStartRun(view, {
        request,
        runId,
        rootNodeRunId,
        rootKind,
        now: this.#clock.now(),
        ...(defaultMaxWallTimeMs !== undefined ? { defaultMaxWallTimeMs } : {}),
        ...(full ? { full } : {}),
        ...(local ? { policy: { action: 'run.start' as const, decision: local } } : {}),
        ...(runContext !== request.run_context ? { runContext } : {}),
        ...(request.run_id ? {} : { idGenerated: true }),
      }),
    );
    // An identical retry returns the existing Run and starts nothing.
    if (!started.changes || !this.#policy || local) {
      this.#runEffects(started, started.value.run_context);
      return started.value;
    }
    const run = started.value;
    const decision = await this.#policy.decide({
      action: 'run.start',
      run_id: run.run_id,
      node_run_id: run.root_node_run_id,
      node_type_ref: request.root_node_type_ref,
      ...(run.run_context ? { run_context: run.run_context } : {}),
      ...(request.constraints ? { constraints: request.constraints } : {}),
    });
    const recorded = await this.#mutate(runId, nodeRunNeeds(run.root_node_run_id), (view) =>
      decidePolicy(view, run.root_node_run_id, { action: 'run.start', decision }, this.#clock.now()),
    );
    if (decision.decision !== 'allow' && recorded.changes) {
      this.report({
        type: 'policy_denied',
        runId,
        nodeRunId: run.root_node_run_id,
        action: 'run.start',
        code: decision.reason_code,
        ...traceOf(run.run_context),
      });
    }
    this.#settle(recorded);
    // A denied start is not an HTTP error: the Run exists, failed, with its audit trail. The answer
    // is the Run as these two commits left it, not as the dispatch started below may change it.
    const answer =
      recorded.changes?.run?.run ?? (recorded.value ? run : ((await this.store.getRun(runId))?.run ?? run));
    this.#runEffects(started, run.run_context);
    this.#runEffects(recorded);
    return answer;
  }

  /** Tells the event port (logs); its failure never reaches the work that reported. */
  report(event: CoordinatorEvent): void {
    try {
      this.#onEvent?.(event);
    } catch (error) {
      this.#onBackgroundError(error, 'reporting an event');
    }
  }

  /** Where queued NodeRuns go (the dispatcher, or nothing in state-authority mode). */
  get execution(): ExecutionPort {
    return this.#execution;
  }

  /** The coordinator's clock. */
  now(): Date {
    return this.#clock.now();
  }

  async getRun(runId: string): Promise<Run> {
    const record = await this.store.getRun(runId);
    if (!record) throw runNotFound(runId);
    return record.run;
  }

  async cancelRun(runId: string): Promise<Run> {
    return this.commit(runId, RUN_ONLY, (view) =>
      decideTerminateRun(view, { now: this.#clock.now(), state: 'canceled', reason: 'run_canceled' }),
    );
  }

  async createNodeRuns(request: NodeRunsCreateRequest): Promise<NodeRun[]> {
    rejectReservedExtensions(
      ['/extensions', request.extensions],
      ...request.node_runs.map((spec, i) => [`/node_runs/${i}/extensions`, spec.extensions] as const),
    );
    const kinds = await this.#resolveKinds(request.node_runs.map((spec) => spec.node_type_ref));
    return this.commit(request.run_id, createNeeds(request), (view) =>
      decideCreateNodeRuns(view, {
        request,
        now: this.#clock.now(),
        newId: () => this.#ids.nodeRunId(),
        kindOf: (ref) => kinds.get(ref),
      }),
    );
  }

  /** The Run as served. */
  async runJson(runId: string): Promise<string> {
    const json = await this.store.runJson(runId);
    if (json === undefined) throw runNotFound(runId);
    return json;
  }

  /** The NodeRun as served. */
  async nodeRunJson(nodeRunId: string): Promise<string> {
    const json = await this.store.nodeRunJson(nodeRunId);
    if (json === undefined) throw nodeRunNotFound(nodeRunId);
    return json;
  }

  async getNodeRun(nodeRunId: string): Promise<NodeRun> {
    const record = await this.store.getNodeRun(nodeRunId);
    if (!record) throw nodeRunNotFound(nodeRunId);
    return record.nodeRun;
  }

  async reportEvaluation(nodeRunId: string, body: NodeRunEvaluationReportRequest): Promise<void> {
    rejectReservedExtensions(['/extensions', body.extensions]);
    const runId = await this.#locate(nodeRunId);
    await this.commit(runId, nodeRunNeeds(nodeRunId), (view) =>
      decideEvaluation(view, nodeRunId, body, this.#clock.now()),
    );
  }

  async completeNodeRun(nodeRunId: string, body: NodeRunCompleteRequest): Promise<void> {
    rejectReservedExtensions(['/extensions', body.extensions]);
    const runId = await this.#locate(nodeRunId);
    await this.commit(runId, nodeRunNeeds(nodeRunId), (view) =>
      decideComplete(view, nodeRunId, body, this.#clock.now()),
    );
  }

  /** True once shutdown has begun: no new work is started. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Shutdown begins: start no more work (dispatches already executing may still finish). */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#execution.stop();
    this.#reconciler?.stop();
    // Queued NodeRuns this process held are handed to the others at once.
    this.#released = this.store.recovery
      ?.releaseQueued()
      .catch((error) => this.#onBackgroundError(error, 'releasing queued NodeRuns'));
  }

  /** Stops timers and the execution port. The store is closed by its owner. */
  async close(): Promise<void> {
    this.stop();
    for (const disarm of this.#deadlines.values()) disarm();
    this.#deadlines.clear();
    // With a shared store, executions in flight may still finish and be recorded (the process's
    // shutdown timeout bounds the wait); their leases are renewed meanwhile.
    await this.#execution.close(this.#reconciler !== undefined);
    await this.#reconciler?.close();
    await this.#released;
    // What is still executing now is lost; the other processes may recover it at once.
    await this.store.recovery
      ?.endLease()
      .catch((error) => this.#onBackgroundError(error, 'ending the lease'));
  }

  async #locate(nodeRunId: string): Promise<string> {
    const runId = await this.store.locate(nodeRunId);
    if (runId === undefined) throw nodeRunNotFound(nodeRunId);
    return runId;
  }

  /**
   * The kind of each ref, by the ref object itself; a type named by several specs is resolved once,
   * and a resolver that answers at once is not awaited.
   */
  async #resolveKinds(refs: readonly NodeTypeRef[]): Promise<Map<NodeTypeRef, NodeKind | undefined>> {
    const kinds = new Map<NodeTypeRef, NodeKind | undefined>();
    const byType = new Map<string, NodeKind | undefined>();
    for (const ref of refs) {
      const key = kindKey(ref);
      if (!byType.has(key)) {
        const found = this.#kinds.kindOf(ref);
        byType.set(key, found instanceof Promise ? await found : found);
      }
      kinds.set(ref, byType.get(key));
    }
    return kinds;
  }

  /** Commits a decision on one Run and carries out its effects; the value is the decision's. */
  async commit<T>(runId: string, needs: Needs, decide: (view: RunView) => Decision<T>): Promise<T> {
    return (await this.commitDecision(runId, needs, decide)).value;
  }

  /** As `commit`, answering the whole committed decision (its changes too). */
  async commitDecision<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    const decision = await this.#mutate(runId, needs, decide);
    this.#settle(decision);
    this.#runEffects(decision);
    return decision;
  }

  /** The store's commit, told to the commit observer with the prior states of updated NodeRuns. */
  async #mutate<T>(
    runId: string,
    needs: Needs,
    decide: (view: RunView) => Decision<T>,
  ): Promise<CommittedDecision<T>> {
    const observe = this.#onCommitted;
    if (!observe) return this.store.mutate(runId, needs, decide);
    // A store may decide more than once (a retried transaction): the last decision is the committed one.
    let before: ReadonlyMap<string, NodeRun['state']> = NO_PRIOR_STATES;
    const committed = await this.store.mutate(runId, needs, (view) => {
      const decision = decide(view);
      const updated = decision.changes?.updated ?? [];
      before = NO_PRIOR_STATES;
      if (updated.length === 0) return decision;
      const prior = new Map<string, NodeRun['state']>();
      for (const record of updated) {
        const id = record.nodeRun.node_run_id;
        const state = view.nodeRun(id)?.nodeRun.state;
        if (state !== undefined) prior.set(id, state);
      }
      before = prior;
      return decision;
    });
    try {
      observe(committed, before);
    } catch (error) {
      this.#onBackgroundError(error, 'commit observer');
    }
    return committed;
  }

  /** The effects of a committed decision; new NodeRuns go to dispatch with their records. */
  #runEffects(decision: Decision<unknown>, runContext?: RunContext): void {
    const created = decision.changes?.created ?? [];
    // A few new records are found by a scan; many through a map built once.
    const byId = created.length > 8 ? new Map(created.map((r) => [r.nodeRun.node_run_id, r])) : undefined;
    const find = (id: string) =>
      byId ? byId.get(id) : created.find((record) => record.nodeRun.node_run_id === id);
    for (const effect of decision.effects ?? []) {
      const record = effect.type === 'dispatch' ? find(effect.nodeRunId) : undefined;
      if (record)
        this.#dispatch(record.nodeRun.node_run_id, { record, ...(runContext ? { runContext } : {}) });
      else this.#run(effect);
    }
  }

  #dispatch(nodeRunId: string, known: { record: NodeRunRecord; runContext?: RunContext }): void {
    try {
      this.#execution.dispatch(nodeRunId, known);
    } catch (error) {
      this.#onBackgroundError(error, 'effect dispatch');
    }
  }

  /**
   * After a commit: the execution port drops what it held for NodeRuns the commit made terminal;
   * those its cascade ended while an executor had them get a cancel call.
   */
  #settle(decision: CommittedDecision<unknown>): void {
    for (const record of decision.changes?.updated ?? []) {
      if (isTerminal(record.nodeRun.state)) this.#ended(record.nodeRun.node_run_id);
    }
    for (const execution of decision.ended) {
      this.#ended(execution.nodeRunId);
      this.#execution.cancel(execution);
    }
  }

  #ended(nodeRunId: string): void {
    this.#execution.settled(nodeRunId);
  }

  #run(effect: Effect): void {
    try {
      switch (effect.type) {
        case 'dispatch':
          this.#execution.dispatch(effect.nodeRunId);
          return;
        case 'cancel_execution':
          // Carried out from the committed decision's `ended`, where the store recorded it.
          return;
        case 'arm_deadline':
          this.armRunDeadline(effect.runId, effect.at);
          return;
        case 'disarm_deadline':
          this.#disarmDeadline(effect.runId);
          return;
        default: {
          const unknown: never = effect;
          throw new Error(`unhandled effect ${JSON.stringify(unknown)}`);
        }
      }
    } catch (error) {
      this.#onBackgroundError(error, `effect ${effect.type}`);
    }
  }

  /** Expires the Run at `at` (epoch ms) unless it finishes first. */
  armRunDeadline(runId: string, at: number): void {
    this.#disarmDeadline(runId);
    const disarm = alarmAt(this.#timers, this.#clock, at, () => {
      this.#deadlines.delete(runId);
      this.expireRun(runId).catch((error) =>
        this.#onBackgroundError(error, `deadline of run ${runId}`, { runId }),
      );
    });
    this.#deadlines.set(runId, disarm);
  }

  #disarmDeadline(runId: string): void {
    const disarm = this.#deadlines.get(runId);
    if (disarm === undefined) return;
    disarm();
    this.#deadlines.delete(runId);
  }

  /** The Run's `max_wall_time_ms` has passed: end it like a cancel, but `failed`. */
  async expireRun(runId: string): Promise<Run> {
    return this.commit(runId, RUN_ONLY, (view) => {
      const limit = view.record?.constraints?.budgets?.max_wall_time_ms;
      return decideTerminateRun(view, {
        now: this.#clock.now(),
        state: 'failed',
        reason: 'budget_exceeded',
        detail: { budget: 'max_wall_time_ms', limit },
      });
    });
  }

  /** Number of armed Run deadlines (diagnostics and tests). */
  get armedDeadlines(): number {
    return this.#deadlines.size;
  }
}

/** The prior states of a decision that updated no NodeRun. */
const NO_PRIOR_STATES: ReadonlyMap<string, NodeRun['state']> = new Map();

const kindKey = (ref: NodeTypeRef) => `${ref.node_type_id}\n${ref.version}`;
