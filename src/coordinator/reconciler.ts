/**
 * Finishes what stopped processes left behind, for stores shared by several processes (see
 * `Recovery`). At start and then periodically it: renews this process's leases; dispatches queued
 * NodeRuns nobody holds; fails atomic executions whose waiting process is gone
 * (`execution_owner_lost`: an execution is never run twice) and tells their executors to stop;
 * enforces composite and Run deadlines from their stored absolute times (arming a timer for those
 * due before the next pass, so deadlines are kept to the millisecond whatever their length); re-sends
 * executor cancels that were owed but not delivered; and deletes finished Runs past retention.
 * Every change goes through the coordinator's decisions, so it is exactly-once across processes.
 */
import { decideAbandon, nodeRunNeeds } from '../core/completion.js';
import { failure } from '../errors.js';
import type { Recovery } from '../store/store.js';
import type { Coordinator } from './coordinator.js';
import type { Timers } from './ports.js';

export interface ReconcilerOptions {
  /** Time between passes. */
  readonly intervalMs: number;
  /** Lease length; leases are renewed three times per lease. */
  readonly leaseTtlMs: number;
  /** Finished Runs older than this are deleted; 0 keeps them. */
  readonly retentionMs: number;
  /** Whether this process dispatches NodeRuns (it adopts orphaned queued ones only then). */
  readonly dispatching: boolean;
  readonly timers: Timers;
  readonly onError: (error: unknown, context: string) => void;
}

/** Rows handled per kind of work and pass, so that one pass stays short. */
const BATCH = 100;
/** Attempts after which an owed cancel is given up (its executor never answered). */
const MAX_EFFECT_ATTEMPTS = 12;
const SWEEP_EVERY_MS = 60_000;

export const EXECUTION_OWNER_LOST = failure('execution_owner_lost');

export class Reconciler {
  readonly #coordinator: Coordinator;
  readonly #recovery: Recovery;
  readonly #options: ReconcilerOptions;
  #passTimer: unknown;
  #renewTimer: unknown;
  #running: Promise<void> | undefined;
  #stopped = false;
  #lastSweep = 0;

  constructor(coordinator: Coordinator, recovery: Recovery, options: ReconcilerOptions) {
    this.#coordinator = coordinator;
    this.#recovery = recovery;
    this.#options = options;
  }

  /** Runs a first pass now, then one per interval; renews leases on their own schedule. */
  start(): Promise<void> {
    this.#scheduleRenewal();
    return this.#tick();
  }

  /** One pass, now (also used by tests); concurrent calls share the pass in progress. */
  pass(): Promise<void> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** No more passes; leases are still renewed until `close` (executions may be finishing). */
  stop(): void {
    this.#stopped = true;
    this.#options.timers.clearTimeout(this.#passTimer);
  }

  async close(): Promise<void> {
    this.stop();
    this.#options.timers.clearTimeout(this.#renewTimer);
    await this.#running;
  }

  async #tick(): Promise<void> {
    try {
      await this.pass();
    } finally {
      if (!this.#stopped) {
        this.#passTimer = this.#options.timers.setTimeout(() => void this.#tick(), this.#options.intervalMs);
      }
    }
  }

  #scheduleRenewal(): void {
    this.#renewTimer = this.#options.timers.setTimeout(
      () => {
        this.#recovery
          .renewLeases()
          .catch((error) => this.#options.onError(error, 'lease renewal'))
          .finally(() => this.#scheduleRenewal());
      },
      Math.max(1, Math.floor(this.#options.leaseTtlMs / 3)),
    );
  }

  async #pass(): Promise<void> {
    const steps: [string, () => Promise<void>][] = [
      ['lease renewal', () => this.#recovery.renewLeases()],
      ['adopting queued NodeRuns', () => this.#adopt()],
      ['failing lost executions', () => this.#lost()],
      ['composite deadlines', () => this.#nodeRunDeadlines()],
      ['Run deadlines', () => this.#runDeadlines()],
      ['owed executor cancels', () => this.#effects()],
      ['retention', () => this.#sweep()],
    ];
    for (const [context, step] of steps) {
      if (this.#stopped) return;
      try {
        await step();
      } catch (error) {
        this.#options.onError(error, `reconciler: ${context}`);
      }
    }
  }

  async #adopt(): Promise<void> {
    if (!this.#options.dispatching) return;
    const execution = this.#coordinator.execution;
    for (const { nodeRunId } of await this.#recovery.adoptQueued(BATCH)) execution.dispatch(nodeRunId);
  }

  async #lost(): Promise<void> {
    for (const { runId, nodeRunId } of await this.#recovery.lostExecutions(BATCH)) {
      const abandoned = await this.#coordinator.commitDecision(runId, nodeRunNeeds(nodeRunId), (view) =>
        decideAbandon(view, nodeRunId, EXECUTION_OWNER_LOST, this.#coordinator.now()),
      );
      if (abandoned.changes) {
        const traceId = abandoned.changes.run?.run.run_context?.trace?.trace_id;
        this.#coordinator.report({
          type: 'execution_owner_lost',
          runId,
          nodeRunId,
          code: EXECUTION_OWNER_LOST.code,
          ...(traceId ? { traceId } : {}),
        });
      }
    }
  }

  /** Due deadlines are enforced now; those due before the next pass get a timer. */
  async #nodeRunDeadlines(): Promise<void> {
    const until = this.#coordinator.now().getTime() + this.#options.intervalMs;
    for (const { runId, nodeRunId, at } of await this.#recovery.nodeRunDeadlines(until, BATCH)) {
      this.#coordinator.execution.watch(runId, nodeRunId, at);
    }
  }

  async #runDeadlines(): Promise<void> {
    const until = this.#coordinator.now().getTime() + this.#options.intervalMs;
    for (const { runId, at } of await this.#recovery.runDeadlines(until, BATCH)) {
      this.#coordinator.armRunDeadline(runId, at);
    }
  }

  async #effects(): Promise<void> {
    for (const effect of await this.#recovery.dueEffects(BATCH)) {
      const { attempts, ...execution } = effect;
      if (attempts > MAX_EFFECT_ATTEMPTS) {
        this.#options.onError(
          new Error(`gave up telling the ${execution.kind ?? ''} executor to stop ${execution.nodeRunId}`),
          'owed executor cancels',
        );
        if (execution.effectId) await this.#coordinator.store.effectDone(execution.runId, execution.effectId);
        continue;
      }
      this.#coordinator.execution.cancel(execution);
    }
  }

  async #sweep(): Promise<void> {
    const { retentionMs } = this.#options;
    const now = this.#coordinator.now().getTime();
    if (retentionMs <= 0 || now - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now;
    while ((await this.#recovery.sweep(now - retentionMs, BATCH)) === BATCH && !this.#stopped);
  }
}
