/**
 * One shared reader per followed Run. It subscribes to the Run's commits once (not once per
 * stream), reads what was committed from the store when a stream is waiting for it, serialises each
 * event once, and keeps the lines in a window that every follow stream of the Run reads with its
 * own cursor. The window is bounded in bytes: lines every stream has passed are dropped at once,
 * and beyond `windowBytes` the oldest go too, so that a stream left behind reads its lines from
 * the store's log again instead of making this process hold them for it.
 */
import type { Store } from '../store/store.js';
import { type EventLine, nextLimit, readLines } from './lines.js';

/** A follow stream as the feed sees it. */
export interface FeedReader {
  /** Seq of the last event this reader has passed. */
  readonly cursor: number;
  /** New lines arrived (or the Run finished) after the reader waited at the tail. */
  wake(): void;
  /** The store could not be read. */
  fail(error: unknown): void;
}

export interface FeedLimits {
  /** Bytes of lines one store read builds at most (plus one event). */
  readonly readBytes: number;
  /** Bytes of lines kept for readers that are behind the tail. */
  readonly windowBytes: number;
}

/** Where a reader stands: the next line for it, behind the window, or at the tail. */
export type FeedPosition = EventLine | 'behind' | 'tail';

export class RunFeed {
  readonly runId: string;
  readonly #store: Store;
  readonly #limits: FeedLimits;
  readonly #unsubscribe: () => void;
  readonly #readers = new Set<FeedReader>();
  readonly #waiting = new Set<FeedReader>();
  /** Lines with seq in (base, tail], consecutive: `#lines[0]` has seq base + 1. */
  #lines: EventLine[] = [];
  #bytes = 0;
  #base = 0;
  #tail = 0;
  /** The Run was finished when the window last reached the end of the log. */
  #finished = false;
  /** A commit may have added events past the tail (true until the first read). */
  #dirty = true;
  #reading = false;
  #readQueued = false;
  #closed = false;
  #limit = 32;
  #reads = 0;

  constructor(store: Store, runId: string, limits: FeedLimits) {
    this.#store = store;
    this.runId = runId;
    this.#limits = limits;
    this.#unsubscribe = store.subscribe(runId, () => this.#onCommit());
  }

  get readers(): number {
    return this.#readers.size;
  }

  attach(reader: FeedReader): void {
    this.#readers.add(reader);
  }

  /** Returns how many readers remain. */
  detach(reader: FeedReader): number {
    this.#readers.delete(reader);
    this.#waiting.delete(reader);
    return this.#readers.size;
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    this.#readers.clear();
    this.#waiting.clear();
    this.#reset(this.#tail);
  }

  /** Bytes of lines held in the window. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Reads completed so far: a reader that read the log on its own compares it before waiting. */
  get reads(): number {
    return this.#reads;
  }

  /** True when a reader at the tail has seen the Run's last event. */
  get finished(): boolean {
    return this.#finished && !this.#dirty;
  }

  positionAfter(cursor: number): FeedPosition {
    if (cursor < this.#base) return 'behind';
    if (cursor >= this.#tail) return 'tail';
    return this.#lines[cursor - this.#base]!;
  }

  /**
   * Parks `reader` until the feed has read past the tail. If commits are unread, reads now: the
   * reader is at the tail and about to write them (commit notifications themselves only queue a
   * read, see #queueRead).
   */
  wait(reader: FeedReader): void {
    this.#waiting.add(reader);
    if (this.#dirty && !this.#reading) void this.#read();
  }

  #onCommit(): void {
    this.#dirty = true;
    if (this.#waiting.size > 0) this.#queueRead();
  }

  /** Reads on a later turn: commits of the same turn are read together, off the writer's path. */
  #queueRead(): void {
    if (this.#reading || this.#readQueued || this.#closed) return;
    this.#readQueued = true;
    setImmediate(() => {
      this.#readQueued = false;
      void this.#read();
    });
  }

  async #read(): Promise<void> {
    if (this.#closed || this.#reading || this.#waiting.size === 0 || !this.#dirty) return;
    this.#reading = true;
    this.#dirty = false;
    const from = this.#startFor([...this.#waiting]);
    try {
      const chunk = await readLines(this.#store, this.runId, from, this.#limits.readBytes, this.#limit);
      if (this.#closed) return;
      this.#limit = nextLimit(this.#limit, chunk, this.#limits.readBytes);
      if (from !== this.#tail) this.#reset(from);
      const previousTail = this.#tail;
      for (const line of chunk.lines) this.#append(line);
      this.#finished = chunk.complete && chunk.finished;
      if (!chunk.complete) this.#dirty = true;
      this.#evict(previousTail);
      this.#reads += 1;
    } catch (error) {
      this.#dirty = true;
      this.#reading = false;
      const failed = [...this.#waiting];
      this.#waiting.clear();
      for (const reader of failed) reader.fail(error);
      return;
    }
    this.#reading = false;
    const woken = [...this.#waiting];
    this.#waiting.clear();
    for (const reader of woken) reader.wake();
  }

  /**
   * Where the next read starts: the tail, unless every waiting reader is past it (a stream that
   * resumed after the window, or caught up from the log on its own); then the window restarts at
   * the lowest of their cursors rather than reading events none of them will write.
   */
  #startFor(waiting: readonly FeedReader[]): number {
    let lowest = Number.POSITIVE_INFINITY;
    for (const reader of waiting) lowest = Math.min(lowest, reader.cursor);
    return Math.max(lowest, this.#tail);
  }

  #append(line: EventLine): void {
    this.#lines.push(line);
    this.#bytes += line.bytes.length;
    this.#tail = line.seq;
  }

  #reset(at: number): void {
    this.#lines = [];
    this.#bytes = 0;
    this.#base = at;
    this.#tail = at;
    this.#finished = false;
  }

  /**
   * Drops the lines every reader has passed, then the oldest lines while the window is over its
   * budget; lines of the read that just happened stay, since waiting readers are about to take them.
   */
  #evict(previousTail: number): void {
    let passed = Number.POSITIVE_INFINITY;
    for (const reader of this.#readers) passed = Math.min(passed, reader.cursor);
    let drop = 0;
    for (const line of this.#lines) {
      const overBudget = this.#bytes > this.#limits.windowBytes && line.seq <= previousTail;
      if (line.seq > passed && !overBudget) break;
      drop += 1;
      this.#bytes -= line.bytes.length;
      this.#base = line.seq;
    }
    if (drop > 0) this.#lines.splice(0, drop);
  }
}
