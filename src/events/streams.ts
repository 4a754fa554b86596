/**
 * The event streams of this process: one shared feed per followed Run and one slice scheduler for
 * all writes.
 */
import type { Store } from '../store/store.js';
import { type FeedLimits, RunFeed } from './feed.js';
import { FANOUT_SLICE, SliceScheduler } from './scheduler.js';
import { EventStream, type StreamOptions } from './stream.js';

/** Byte bounds of the stream machinery; fixed, named here so that tests and docs can refer to them. */
export const STREAM_BYTES = Object.freeze({
  /** One read from the store, per stream or per feed (plus one event). */
  read: 64 * 1024,
  /** Lines a Run's feed keeps for its streams that are behind the tail. */
  window: 1024 * 1024,
  /** One stream's writes before it yields to the next stream in the slice. */
  step: 64 * 1024,
});

export class EventStreams {
  readonly #store: Store;
  readonly #scheduler = new SliceScheduler(FANOUT_SLICE);
  readonly #feeds = new Map<string, RunFeed>();
  readonly #feedLimits: FeedLimits = { readBytes: STREAM_BYTES.read, windowBytes: STREAM_BYTES.window };
  #follows = 0;

  constructor(store: Store) {
    this.#store = store;
  }

  /** A stream ready to `run`; a follow stream joins its Run's feed at once. */
  open(options: StreamOptions): EventStream {
    const feed = options.follow ? this.#join(options.runId) : undefined;
    return new EventStream(options, {
      store: this.#store,
      scheduler: this.#scheduler,
      feed,
      readBytes: STREAM_BYTES.read,
      stepBytes: STREAM_BYTES.step,
      onEnd: feed ? () => this.#release(feed) : () => {},
    });
  }

  /** Open follow streams, Runs with at least one, and the bytes of lines their feeds hold. */
  stats(): { followStreams: number; followedRuns: number; feedBytes: number } {
    let feedBytes = 0;
    for (const feed of this.#feeds.values()) feedBytes += feed.bytes;
    return { followStreams: this.#follows, followedRuns: this.#feeds.size, feedBytes };
  }

  #join(runId: string): RunFeed {
    let feed = this.#feeds.get(runId);
    if (!feed) {
      feed = new RunFeed(this.#store, runId, this.#feedLimits);
      this.#feeds.set(runId, feed);
    }
    this.#follows += 1;
    return feed;
  }

  /** After a follow stream ended and left its feed: the last one out closes the feed. */
  #release(feed: RunFeed): void {
    this.#follows -= 1;
    if (feed.readers > 0) return;
    feed.close();
    this.#feeds.delete(feed.runId);
  }
}
