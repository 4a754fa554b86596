/**
 * What the coordinator needs from the outside world, injected so that tests are deterministic and
 * forks can swap implementations: time, ids, node kinds, execution and timers.
 */

import * as nodeTimers from 'node:timers';
import { kindFromPrefix } from '../core/ids.js';
import type { EndedExecution, NodeRunRecord } from '../core/model.js';
import type { NodeKind, NodeTypeRef, RunContext } from '../gen/contract.js';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Resolves the kind of a node type before its NodeRun is created (undefined = not known yet). */
export interface KindResolver {
  kindOf(ref: NodeTypeRef): Promise<NodeKind | undefined> | NodeKind | undefined;
}

export const prefixKinds: KindResolver = { kindOf: (ref) => kindFromPrefix(ref.node_type_id) };

/**
 * Where queued NodeRuns go to be executed. The default does nothing: the coordinator is then a pure
 * state authority and NodeRuns stay `queued` until an external worker completes them.
 */
export interface ExecutionPort {
  /**
   * A NodeRun became `queued`. Must return at once; execution happens in the background. The
   * committed record and its Run's context, when the caller has them, spare reading them back.
   */
  dispatch(nodeRunId: string, known?: { record: NodeRunRecord; runContext?: RunContext }): void;
  /** The coordinator ended a `running` NodeRun; tell its executor (best effort, in the background). */
  cancel(execution: EndedExecution): void;
  /** A NodeRun reached a terminal state, however it got there (to drop its deadline and the like). */
  settled(nodeRunId: string): void;
  /** A running composite must be completed by `at` (epoch ms); fail it then if it is not. */
  watch(runId: string, nodeRunId: string, at: number): void;
  /** Shutdown begins: start nothing new from now on. */
  stop(): void;
  /** Stops; with `drain`, executions in flight may finish first (the caller bounds the wait). */
  close(drain?: boolean): Promise<void>;
}

export const noExecution: ExecutionPort = {
  dispatch: () => {},
  cancel: () => {},
  settled: () => {},
  watch: () => {},
  stop: () => {},
  close: async () => {},
};

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Timers from `node:timers`, which keep real time even where the global `setTimeout` is replaced
 * (as fake timers do to move a process through days): for background schedules such as the
 * reconciler's, whose pace is the machine's, not the coordinator's clock.
 */
export const wallTimers: Timers = {
  setTimeout: (callback, ms) => {
    const handle = nodeTimers.setTimeout(callback, ms);
    handle.unref();
    return handle;
  },
  clearTimeout: (handle) => nodeTimers.clearTimeout(handle as NodeJS.Timeout),
};

/** Longest delay a Node.js timer honours; a longer one fires after 1 ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * Calls `fire` once `clock` reaches `at` (epoch ms), however far away that is: a time beyond one
 * timer's range is reached through intermediate wake-ups. Returns the function that disarms it.
 */
export function alarmAt(timers: Timers, clock: Clock, at: number, fire: () => void): () => void {
  let handle: unknown;
  const arm = () => {
    const delay = at - clock.now().getTime();
    handle =
      delay > MAX_TIMER_DELAY_MS
        ? timers.setTimeout(arm, MAX_TIMER_DELAY_MS)
        : timers.setTimeout(fire, Math.max(0, delay));
  };
  arm();
  return () => timers.clearTimeout(handle);
}
