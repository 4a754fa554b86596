/**
 * One event stream: a cursor in a Run's log and a sink (the HTTP response). A follow stream takes
 * its lines from the Run's shared feed; a snapshot, or a follow stream behind the feed's window,
 * reads them from the store in chunks bounded by bytes. Either way the stream writes only while
 * its sink accepts more and otherwise waits for 'drain': what the process holds for one stream is
 * its socket's high-water mark plus one line, and one chunk read from the store.
 * All writing happens in `step()`, called by the slice scheduler.
 */
import type { Store } from '../store/store.js';
import type { FeedReader, RunFeed } from './feed.js';
import { type EventLine, nextLimit, readLines } from './lines.js';
import type { SliceScheduler, SliceTask } from './scheduler.js';
import { SubtreeFilter } from './subtree.js';

export interface EventSink {
  /** Writes one line; false means "wait for drain before writing more". */
  write(bytes: Buffer): boolean;
  /** Groups the writes of one step into one socket write. */
  cork(): void;
  uncork(): void;
  isClosed(): boolean;
  /** Calls `onDrain` when the sink takes more again and `onClose` once it is gone; returns the removal. */
  listen(onDrain: () => void, onClose: () => void): () => void;
}

export interface StreamOptions {
  readonly runId: string;
  /** Only events with seq > afterSeq. */
  readonly afterSeq: number;
  readonly follow: boolean;
  /** Restricts the stream to the events of this NodeRun and its descendants. */
  readonly subtreeOf?: string;
}

export interface StreamContext {
  readonly store: Store;
  readonly scheduler: SliceScheduler;
  /** The Run's shared feed, for a follow stream. */
  readonly feed: RunFeed | undefined;
  /** Bytes of lines one store read builds at most (plus one event). */
  readonly readBytes: number;
  /** Bytes one step writes at most before the stream yields to the next one. */
  readonly stepBytes: number;
  /** Called once when the stream ends, however it ends (after it left the feed). */
  readonly onEnd: () => void;
}

/** What to do when the lines at hand are written. */
type Next = 'feed' | 'read' | 'wait' | 'end';

type State = 'new' | 'ready' | 'busy' | 'draining' | 'waiting' | 'done';

export class EventStream implements FeedReader, SliceTask {
  cursor: number;
  readonly #options: StreamOptions;
  readonly #ctx: StreamContext;
  readonly #filter: SubtreeFilter | undefined;
  #sink: EventSink | undefined;
  #unlisten: () => void = () => {};
  #state: State = 'new';
  /** Lines read from the store for this stream alone, not yet written; `#pending[#at]` is next. */
  #pending: readonly EventLine[] = [];
  #at = 0;
  #next: Next;
  #limit = 32;
  /** The feed's read count when this stream's own read started. */
  #feedReads = 0;
  #settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
  #outcome: Promise<void> | undefined;

  constructor(options: StreamOptions, ctx: StreamContext) {
    this.#options = options;
    this.#ctx = ctx;
    this.cursor = options.afterSeq;
    this.#next = ctx.feed ? 'feed' : 'read';
    this.#filter = options.subtreeOf === undefined ? undefined : new SubtreeFilter(options.subtreeOf);
    ctx.feed?.attach(this);
  }

  /** Writes the stream to `sink`; resolves when it is complete or the sink went away. */
  run(sink: EventSink): Promise<void> {
    if (this.#outcome) return this.#outcome;
    this.#outcome = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    if (this.#state === 'done') {
      this.#settle?.resolve();
      return this.#outcome;
    }
    this.#sink = sink;
    this.#unlisten = sink.listen(
      () => this.#onDrain(),
      () => this.#finish(),
    );
    // The first step belongs to this stream's own request: what is already committed goes out
    // right behind the headers instead of after the streams queued for the next slice.
    this.#state = 'ready';
    this.step();
    return this.#outcome;
  }

  /** Ends the stream without writing more (also when `run` was never called). */
  close(): void {
    this.#finish();
  }

  wake(): void {
    if (this.#state !== 'waiting') return;
    this.#next = 'feed';
    this.#schedule();
  }

  fail(error: unknown): void {
    this.#finish(error);
  }

  step(): number {
    if (this.#state !== 'ready') return 0;
    const sink = this.#sink!;
    if (sink.isClosed()) {
      this.#finish();
      return 0;
    }
    let written = 0;
    sink.cork();
    try {
      written = this.#writeLines(sink);
    } catch (error) {
      this.#finish(error);
    } finally {
      sink.uncork();
    }
    return written;
  }

  /** Writes lines until the sink is full, the step's budget is spent, or there is nothing at hand. */
  #writeLines(sink: EventSink): number {
    let written = 0;
    for (;;) {
      const line = this.#peek();
      if (line === undefined) return written;
      const verdict = this.#filter ? this.#filter.verdict(line) : true;
      if (verdict === undefined) {
        this.#resolveAncestry(line);
        return written;
      }
      this.#advance(line);
      if (!verdict) continue;
      written += line.bytes.length;
      if (!sink.write(line.bytes)) {
        this.#state = 'draining';
        return written;
      }
      if (written >= this.#ctx.stepBytes) {
        this.#schedule();
        return written;
      }
    }
  }

  /** The next line to consider, or undefined after starting whatever comes next. */
  #peek(): EventLine | undefined {
    if (this.#at < this.#pending.length) return this.#pending[this.#at];
    this.#pending = [];
    this.#at = 0;
    let next = this.#next;
    if (next === 'feed') {
      const feed = this.#ctx.feed!;
      const position = feed.positionAfter(this.cursor);
      if (typeof position === 'object') return position;
      next = position === 'behind' ? 'read' : feed.finished ? 'end' : 'wait';
    }
    if (next === 'read') this.#read();
    else if (next === 'wait') {
      this.#state = 'waiting';
      this.#ctx.feed!.wait(this);
    } else this.#finish();
    return undefined;
  }

  #advance(line: EventLine): void {
    this.cursor = line.seq;
    if (this.#at < this.#pending.length && this.#pending[this.#at] === line) this.#at += 1;
  }

  /** Reads the next chunk of the log from the store, for this stream alone. */
  #read(): void {
    this.#state = 'busy';
    const { store, readBytes, feed } = this.#ctx;
    this.#feedReads = feed?.reads ?? 0;
    readLines(store, this.#options.runId, this.cursor, readBytes, this.#limit).then((chunk) => {
      if (this.#state === 'done') return;
      this.#limit = nextLimit(this.#limit, chunk, readBytes);
      this.#pending = chunk.lines;
      this.#at = 0;
      if (chunk.complete && (!feed || chunk.finished)) this.#next = 'end';
      else if (!feed) this.#next = 'read';
      // Nothing after the cursor: wait for the feed's next read, unless the feed read commits
      // newer than this read meanwhile (a store may notify after a reader already saw them).
      else if (chunk.lines.length === 0 && feed.reads === this.#feedReads) this.#next = 'wait';
      else this.#next = 'feed';
      this.#schedule();
    }, this.fail.bind(this));
  }

  /** A NodeRun whose place in the tree this stream does not know yet: look it up, then go on. */
  #resolveAncestry(line: EventLine): void {
    this.#state = 'busy';
    this.#filter!.resolve(this.#ctx.store, line).then(() => this.#schedule(), this.fail.bind(this));
  }

  #onDrain(): void {
    if (this.#state === 'draining') this.#schedule();
  }

  #schedule(): void {
    if (this.#state === 'done') return;
    this.#state = 'ready';
    this.#ctx.scheduler.schedule(this);
  }

  #finish(error?: unknown): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#pending = [];
    this.#unlisten();
    this.#ctx.scheduler.cancel(this);
    this.#ctx.feed?.detach(this);
    this.#ctx.onEnd();
    if (error === undefined) this.#settle?.resolve();
    else this.#settle?.reject(error);
  }
}
