/**
 * In-process notification of new events per Run, for live streams. Listeners are called after a
 * commit; a listener that throws is logged and never breaks the request that committed.
 */
export type Listener = () => void;

export class EventHub {
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  subscribe(runId: string, listener: Listener): () => void {
    let set = this.#listeners.get(runId);
    if (!set) {
      set = new Set();
      this.#listeners.set(runId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#listeners.get(runId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) this.#listeners.delete(runId);
    };
  }

  publish(runId: string): void {
    const set = this.#listeners.get(runId);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener();
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }

  /** Wakes every subscriber of every Run (after notifications may have been missed). */
  publishAll(): void {
    for (const runId of [...this.#listeners.keys()]) this.publish(runId);
  }

  /** True when `runId` has at least one subscriber. */
  has(runId: string): boolean {
    return this.#listeners.has(runId);
  }

  /** Number of Runs with at least one live subscriber (for tests and diagnostics). */
  get activeRuns(): number {
    return this.#listeners.size;
  }
}
