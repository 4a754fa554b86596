/**
 * Runs queued NodeRuns on executors, in the background and a bounded number at a time (the rest
 * wait in order). Per NodeRun: resolve its kind, ask policy, claim it (`queued → running`, the
 * exactly-once point), then call the Atomic Executor and record its result, or hand a composite to
 * the Composite Executor. Every running NodeRun has a deadline: the execute call's timeout for
 * atomics, a timer for composites. Nothing here ever throws into an API request.
 */
import { hashToken, newAssignmentToken } from '../auth/assignments.js';
import { TokenRequestError } from '../auth/outbound.js';
import type { AtomicExecutorClient } from '../clients/atomic-executor.js';
import type { CompositeExecutorClient } from '../clients/composite-executor.js';
import { ServiceError } from '../clients/http.js';
import type { ErrorDetail } from '../core/completion.js';
import { decideAbandon, decideFail, nodeRunNeeds } from '../core/completion.js';
import { decideClaim, decideExecutionResult, type PolicyRecord } from '../core/dispatch.js';
import { type EndedExecution, isTerminal, type NodeRunRecord } from '../core/model.js';
import { failure } from '../errors.js';
import type { ExecutorBinding, NodeKind, RunContext } from '../gen/contract.js';
import { ATTR, type Tracing } from '../tracing/tracing.js';
import {
  type BackgroundErrorHandler,
  type Coordinator,
  type CoordinatorEvent,
  traceOf,
} from './coordinator.js';
import type { PolicyPort } from './policy.js';
import { alarmAt, type ExecutionPort, type KindResolver, type Timers } from './ports.js';

export interface DispatcherOptions {
  /** A span per dispatch, in the Run's trace, when tracing is on. */
  readonly tracing?: Tracing;
  readonly atomic?: AtomicExecutorClient;
  readonly composite?: CompositeExecutorClient;
  readonly kinds: KindResolver;
  readonly policy?: PolicyPort;
  /** The coordinator's own base URL, sent to composite executors as `coordinator_endpoint`. */
  readonly publicUrl?: string;
  /** Deadline of an atomic NodeRun: the execute call's timeout. */
  readonly executeTimeoutMs: number;
  /** Deadline of a composite NodeRun from the moment its executor accepted it. */
  readonly compositeTimeoutMs: number;
  /** Dispatches in progress at once. */
  readonly concurrency: number;
  readonly timers: Timers;
  readonly onError: BackgroundErrorHandler;
}

export const ATOMIC_EXECUTOR_ID = 'atomic-executor';
export const COMPOSITE_EXECUTOR_ID = 'composite-executor';

/** What both executors are told about a NodeRun: which one, what to do it with, and its limits. */
function workOrder(record: NodeRunRecord, runContext: RunContext | undefined) {
  const { nodeRun } = record;
  return {
    node_run_id: nodeRun.node_run_id,
    run_id: nodeRun.run_id,
    node_type_ref: nodeRun.node_type_ref,
    inputs: nodeRun.inputs ?? {},
    ...(runContext ? { run_context: runContext } : {}),
    ...(record.constraints ? { constraints: record.constraints } : {}),
  };
}

/** The error recorded on a NodeRun when a call to an executor failed. */
function failureOf(error: unknown): ErrorDetail {
  if (error instanceof ServiceError || error instanceof TokenRequestError) {
    return { code: error.code, message: error.message, details: error.details };
  }
  return failure('dispatch_error');
}

export class Dispatcher implements ExecutionPort {
  readonly #options: DispatcherOptions;
  readonly #coordinator: Coordinator;
  readonly #queue: { readonly nodeRunId: string; readonly record?: NodeRunRecord; readonly at: number }[] =
    [];
  /** Told how long each claimed NodeRun waited, from its dispatch to its claim (metrics). */
  readonly #claimObservers: ((waitedMs: number) => void)[] = [];
  readonly #contexts = new Map<string, RunContext | undefined>();
  #head = 0;
  #active = 0;
  #closed = false;
  /** Atomic executions in flight, to abort our wait when the NodeRun is canceled. */
  readonly #inflight = new Map<string, AbortController>();
  /** Deadlines of accepted composites. */
  readonly #deadlines = new Map<string, () => void>();
  readonly #idle: (() => void)[] = [];

  constructor(coordinator: Coordinator, options: DispatcherOptions) {
    this.#coordinator = coordinator;
    this.#options = options;
  }

  dispatch(nodeRunId: string, known?: { record: NodeRunRecord; runContext?: RunContext }): void {
    if (this.#closed) return;
    if (known?.runContext) this.#remember(known.record.nodeRun.run_id, known.runContext);
    const at = performance.now();
    this.#queue.push(known ? { nodeRunId, record: known.record, at } : { nodeRunId, at });
    this.#pump();
  }

  /** A Run's context (its trace among others), read from the store when this process has not seen it. */
  async #runContext(runId: string): Promise<RunContext | undefined> {
    if (this.#contexts.has(runId)) return this.#contexts.get(runId);
    const runContext = (await this.#coordinator.store.getRun(runId))?.run.run_context;
    this.#remember(runId, runContext);
    return runContext;
  }

  /** Runs' contexts (immutable), so that dispatching a NodeRun seldom needs to read its Run. */
  #remember(runId: string, runContext: RunContext | undefined): void {
    this.#contexts.delete(runId);
    this.#contexts.set(runId, runContext);
    if (this.#contexts.size > 10_000) this.#contexts.delete(this.#contexts.keys().next().value as string);
  }

  cancel(execution: EndedExecution): void {
    const id = execution.nodeRunId;
    this.#inflight.get(id)?.abort();
    this.#clearDeadline(id);
    this.#tellExecutorToStop(execution);
  }

  /**
   * In the background: the executor's cancel endpoint (retried by the client). Once it answers, the
   * store forgets the owed cancel; if it cannot be reached, the cancel stays owed and is tried again
   * later, by this process or another one.
   */
  #tellExecutorToStop(execution: EndedExecution): void {
    const { kind, nodeRunId: id } = execution;
    const ids = { runId: execution.runId, nodeRunId: id };
    const executor =
      kind === 'atomic' ? this.#options.atomic : kind === 'composite' ? this.#options.composite : undefined;
    const done = () => {
      if (execution.effectId === undefined) return;
      this.#coordinator.store
        .effectDone(execution.runId, execution.effectId)
        .catch((error) => this.#options.onError(error, `recording the cancel of ${id}`, ids));
    };
    if (!executor) {
      done();
      return;
    }
    this.#runContext(execution.runId)
      .then((runContext) => executor.cancel(id, runContext))
      .then(done, (error) => this.#options.onError(error, `cancel of ${kind} ${id}`, ids));
  }

  /** A running composite's deadline, armed here (the reconciler arms those this process did not claim). */
  watch(runId: string, nodeRunId: string, at: number): void {
    if (this.#closed) return;
    this.#clearDeadline(nodeRunId);
    const disarm = alarmAt(this.#options.timers, { now: () => this.#coordinator.now() }, at, () => {
      this.#deadlines.delete(nodeRunId);
      this.#expireComposite(runId, nodeRunId).catch((error) =>
        this.#options.onError(error, `deadline of composite ${nodeRunId}`, { runId, nodeRunId }),
      );
    });
    this.#deadlines.set(nodeRunId, disarm);
  }

  settled(nodeRunId: string): void {
    // Finished some other way (a worker's :complete, a cascade): stop waiting and drop its deadline.
    this.#inflight.get(nodeRunId)?.abort();
    this.#clearDeadline(nodeRunId);
  }

  stop(): void {
    this.#closed = true;
    this.#queue.length = 0;
    this.#head = 0;
  }

  /** NodeRuns waiting for a dispatch slot. */
  get queued(): number {
    return this.#pending();
  }

  /** Registers an observer of the wait from dispatch to claim (`queued → running`) of each NodeRun. */
  observeClaims(observer: (waitedMs: number) => void): void {
    this.#claimObservers.push(observer);
  }

  /** Resolves when no dispatch is queued or in progress (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.#active === 0 && this.#pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /**
   * Stops everything. With `drain`, executions already waited for are first given the chance to
   * finish (the caller bounds how long); without it, they are let go at once. Either way a durable
   * store's leases tell the other instances what this process leaves unfinished.
   */
  async close(drain = false): Promise<void> {
    this.stop();
    for (const id of [...this.#deadlines.keys()]) this.#clearDeadline(id);
    if (!drain) for (const controller of this.#inflight.values()) controller.abort();
    await this.idle();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #pump(): void {
    while (this.#active < this.#options.concurrency && this.#pending() > 0) {
      const { nodeRunId: id, record, at } = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      this.#active++;
      this.#run(id, record, at)
        .catch((error) =>
          this.#options.onError(error, `dispatch of ${id}`, {
            nodeRunId: id,
            ...(record ? { runId: record.nodeRun.run_id } : {}),
          }),
        )
        .finally(() => {
          this.#active--;
          this.#pump();
          if (this.#active === 0 && this.#pending() === 0)
            for (const resolve of this.#idle.splice(0)) resolve();
        });
    }
  }

  async #run(nodeRunId: string, known: NodeRunRecord | undefined, queuedAt: number): Promise<void> {
    const store = this.#coordinator.store;
    const record = known ?? (await store.getNodeRun(nodeRunId));
    if (record?.nodeRun.state !== 'queued') return;
    const runId = record.nodeRun.run_id;
    // The claim checks the Run is still running; its context is all dispatch needs from it.
    if (!this.#contexts.has(runId)) {
      const run = await store.getRun(runId);
      if (!run || isTerminal(run.run.state)) return;
      this.#remember(runId, run.run.run_context);
    }
    const runContext = this.#contexts.get(runId);
    const tracing = this.#options.tracing;
    if (!tracing) return this.#dispatchQueued(record, runContext, queuedAt);
    return tracing.inSpan(
      'dispatch',
      { [ATTR.runId]: runId, [ATTR.nodeRunId]: nodeRunId },
      () => this.#dispatchQueued(record, runContext, queuedAt),
      { runContext },
    );
  }

  /** Resolves the kind, asks policy, claims the NodeRun and hands it to its executor. */
  async #dispatchQueued(
    record: NodeRunRecord,
    runContext: RunContext | undefined,
    /** When it was queued here (`performance.now()`), for the dispatch latency. */
    queuedAt: number,
  ): Promise<void> {
    const nodeRunId = record.nodeRun.node_run_id;
    const runId = record.nodeRun.run_id;
    const now = () => this.#coordinator.now();

    const kind = record.nodeRun.kind ?? (await this.#options.kinds.kindOf(record.nodeRun.node_type_ref));
    if (this.#closed) return;
    if (!kind) {
      await this.#coordinator.commit(runId, nodeRunNeeds(nodeRunId), (view) =>
        decideFail(view, nodeRunId, failure('unknown_node_kind'), now()),
      );
      this.#report('dispatch_failed', record, runContext, 'unknown_node_kind');
      return;
    }
    const policy = await this.#decide(record, runContext);
    // Shutdown began while the kind or the policy was being asked: claim nothing. The NodeRun stays
    // queued (a durable store hands it to another instance).
    if (this.#closed) return;
    const refuse = this.#refusal(kind);
    const binding = this.#binding(kind);
    const token = kind === 'composite' && !refuse ? newAssignmentToken() : undefined;
    // Registered before the claim, so that a cancel arriving right after it is never missed.
    const controller = new AbortController();
    this.#inflight.set(nodeRunId, controller);
    const claimedAt = now();
    const claimed = await this.#coordinator.commitDecision(runId, nodeRunNeeds(nodeRunId), (view) =>
      decideClaim(view, {
        nodeRunId,
        kind,
        binding,
        now: claimedAt,
        ...(kind === 'composite'
          ? { deadlineAt: claimedAt.getTime() + this.#options.compositeTimeoutMs }
          : {}),
        ...(policy ? { policy } : {}),
        ...(refuse ? { refuse } : {}),
        ...(token ? { assignmentTokenHash: hashToken(token) } : {}),
      }),
    );
    if (claimed.value === 'failed') {
      const denied = policy && policy.decision.decision !== 'allow';
      if (denied) this.#report('policy_denied', record, runContext, policy.decision.reason_code);
      else this.#report('dispatch_failed', record, runContext, refuse?.code ?? 'budget_exceeded');
    }
    try {
      if (claimed.value === 'claimed' && this.#claimObservers.length > 0) {
        const waited = performance.now() - queuedAt;
        for (const observe of this.#claimObservers) observe(waited);
      }
      if (claimed.value !== 'claimed' || controller.signal.aborted) return;
      const running = claimed.changes!.updated![0]!;
      if (kind === 'atomic') await this.#execute(running, runContext, controller);
      else await this.#begin(running, runContext, token!, controller);
    } finally {
      if (this.#inflight.get(nodeRunId) === controller) this.#inflight.delete(nodeRunId);
    }
  }

  async #decide(
    record: NodeRunRecord,
    runContext: RunContext | undefined,
  ): Promise<PolicyRecord | undefined> {
    if (!this.#options.policy) return undefined;
    const { nodeRun } = record;
    const decision = await this.#options.policy.decide({
      action: 'node.run.execute',
      run_id: nodeRun.run_id,
      node_run_id: nodeRun.node_run_id,
      node_type_ref: nodeRun.node_type_ref,
      ...(runContext ? { run_context: runContext } : {}),
      ...(record.constraints ? { constraints: record.constraints } : {}),
    });
    return { action: 'node.run.execute', decision };
  }

  #refusal(kind: NodeKind): ErrorDetail | undefined {
    if (kind === 'atomic' && !this.#options.atomic) {
      return failure('atomic_executor_unconfigured');
    }
    if (kind === 'composite' && !this.#options.composite) {
      return failure('composite_executor_unconfigured');
    }
    if (kind === 'composite' && !this.#options.publicUrl) {
      return failure('coordinator_url_unconfigured');
    }
    return undefined;
  }

  #binding(kind: NodeKind): ExecutorBinding {
    const client = kind === 'atomic' ? this.#options.atomic : this.#options.composite;
    return {
      executor_instance_id: kind === 'atomic' ? ATOMIC_EXECUTOR_ID : COMPOSITE_EXECUTOR_ID,
      endpoint: client?.http.baseUrl ?? 'about:blank',
    };
  }

  async #execute(record: NodeRunRecord, runContext: RunContext | undefined, controller: AbortController) {
    const { nodeRun } = record;
    const id = nodeRun.node_run_id;
    try {
      const result = await this.#options.atomic!.execute(
        {
          ...workOrder(record, runContext),
        },
        { timeoutMs: this.#options.executeTimeoutMs, signal: controller.signal },
      );
      // The executor has answered: there is no wait left to abort when the result's commit ends the
      // NodeRun (an abort builds an exception with its stack, for every NodeRun).
      if (this.#inflight.get(id) === controller) this.#inflight.delete(id);
      await this.#coordinator.commit(nodeRun.run_id, nodeRunNeeds(id), (view) =>
        decideExecutionResult(view, id, result, this.#coordinator.now()),
      );
    } catch (error) {
      // Aborted because the NodeRun finished some other way (canceled, completed by a worker).
      if (controller.signal.aborted) return;
      // After a timeout the executor may still be working on it: it is told to stop.
      const timedOut = error instanceof ServiceError && error.kind === 'timeout';
      const decide = timedOut ? decideAbandon : decideFail;
      const failed = failureOf(error);
      await this.#coordinator.commit(nodeRun.run_id, nodeRunNeeds(id), (view) =>
        decide(view, id, failed, this.#coordinator.now()),
      );
      this.#report(timedOut ? 'executor_timeout' : 'dispatch_failed', record, runContext, failed.code);
    }
  }

  async #begin(
    record: NodeRunRecord,
    runContext: RunContext | undefined,
    token: string,
    controller: AbortController,
  ): Promise<void> {
    const { nodeRun } = record;
    const id = nodeRun.node_run_id;
    let failed: ErrorDetail | undefined;
    try {
      const response = await this.#options.composite!.begin(
        {
          ...workOrder(record, runContext),
          coordinator_endpoint: this.#options.publicUrl!,
          assignment_token: token,
          ...(nodeRun.extensions ? { extensions: nodeRun.extensions } : {}),
        },
        controller.signal,
      );
      if (!response.accepted) {
        failed = failure('composite_rejected', response.message);
      }
    } catch (error) {
      // Canceled while begin was in flight: the NodeRun is terminal and the executor was told.
      if (controller.signal.aborted) return;
      failed = failureOf(error);
    }
    if (failed) {
      const detail = failed;
      await this.#coordinator.commit(nodeRun.run_id, nodeRunNeeds(id), (view) =>
        decideFail(view, id, detail, this.#coordinator.now()),
      );
      this.#report('dispatch_failed', record, runContext, detail.code);
      return;
    }
    // It may have been canceled while begin was in flight.
    const current = await this.#coordinator.store.getNodeRun(id);
    const at = current?.deadlineAt;
    if (current?.nodeRun.state === 'running' && at !== undefined) this.watch(nodeRun.run_id, id, at);
  }

  async #expireComposite(runId: string, nodeRunId: string): Promise<void> {
    const timeoutMs = this.#options.compositeTimeoutMs;
    await this.#coordinator.commit(runId, nodeRunNeeds(nodeRunId), (view) =>
      decideAbandon(
        view,
        nodeRunId,
        failure(
          'node_run_timeout',
          `The Composite Executor did not complete this NodeRun within ${timeoutMs} ms`,
          { timeout_ms: timeoutMs },
        ),
        this.#coordinator.now(),
      ),
    );
    this.#coordinator.report({
      type: 'executor_timeout',
      runId,
      nodeRunId,
      code: 'node_run_timeout',
      ...traceOf(this.#contexts.get(runId)),
    });
  }

  /** For logs: what happened to this NodeRun's dispatch. */
  #report(
    type: CoordinatorEvent['type'],
    record: NodeRunRecord,
    runContext: RunContext | undefined,
    code: string | undefined,
  ): void {
    const { run_id: runId, node_run_id: nodeRunId } = record.nodeRun;
    this.#coordinator.report({
      type,
      runId,
      nodeRunId,
      ...(code !== undefined ? { code } : {}),
      ...(type === 'policy_denied' ? { action: 'node.run.execute' } : {}),
      ...traceOf(runContext),
    });
  }

  #clearDeadline(id: string): void {
    const disarm = this.#deadlines.get(id);
    if (disarm === undefined) return;
    disarm();
    this.#deadlines.delete(id);
  }
}
