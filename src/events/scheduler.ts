/**
 * Runs stream writes in bounded slices, one slice per turn of the event loop. Feeding a thousand
 * streams after a commit is a thousand socket writes; done in one go, they would hold every other
 * request (a health check, the next write to the Run) until the last stream is fed. A slice stops
 * after a number of streams or of bytes, and the next one runs from `setImmediate`, that is after
 * the event loop has served the sockets that became readable meanwhile.
 */

export interface SliceTask {
  /** Does a bounded amount of work and returns the bytes it wrote. Must not throw. */
  step(): number;
}

export interface SliceLimits {
  /** Tasks stepped per slice. */
  readonly streams: number;
  /** Bytes written per slice (the slice ends after the task that crosses it). */
  readonly bytes: number;
}

export const FANOUT_SLICE: SliceLimits = Object.freeze({ streams: 64, bytes: 1024 * 1024 });

export class SliceScheduler {
  /** Tasks waiting for a slice, in arrival order (a Set keeps insertion order). */
  readonly #queue = new Set<SliceTask>();
  readonly #limits: SliceLimits;
  #armed = false;

  constructor(limits: SliceLimits = FANOUT_SLICE) {
    this.#limits = limits;
  }

  /** Queues `task` for a later slice; a task already queued keeps its place. */
  schedule(task: SliceTask): void {
    this.#queue.add(task);
    this.#arm();
  }

  /** Forgets a queued task (a stream that ended). */
  cancel(task: SliceTask): void {
    this.#queue.delete(task);
  }

  #arm(): void {
    if (this.#armed || this.#queue.size === 0) return;
    this.#armed = true;
    setImmediate(this.#run);
  }

  readonly #run = (): void => {
    this.#armed = false;
    let tasks = 0;
    let bytes = 0;
    for (const task of this.#queue) {
      if (tasks >= this.#limits.streams || bytes >= this.#limits.bytes) break;
      this.#queue.delete(task);
      tasks += 1;
      bytes += task.step();
    }
    this.#arm();
  };
}
