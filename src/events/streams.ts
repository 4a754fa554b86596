/**
 * The event streams of this process: one shared feed per followed Run, one slice scheduler for all
 * writes, and the caps on follow streams (a follow stream holds a socket and a place in its Run's
 * fan-out for as long as the Run lasts, so their number is bounded per Run and in total).
 */
import { ArpError } from '../errors.js';
import type { Store } from '../store/store.js';
import { type FeedLimits, RunFeed } from './feed.js';
import { MAX_EVENTS_PER_READ } from './lines.js';
import { FANOUT_SLICE, SliceScheduler } from './scheduler.js';
import { EventStream, type StreamOptions } from './stream.js';
import { SubtreeFilter } from './subtree.js';

export interface StreamLimits {
  /** Open follow streams in the whole process. */
  readonly maxFollowStreams: number;
  /** Open follow streams on one Run (Run and NodeRun streams together). */
  readonly maxFollowStreamsPerRun: number;
}

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
  readonly #limits: StreamLimits;
  readonly #scheduler = new SliceScheduler(FANOUT_SLICE);
  readonly #feeds = new Map<string, RunFeed>();
  readonly #feedLimits: FeedLimits = { readBytes: STREAM_BYTES.read, windowBytes: STREAM_BYTES.window };
  #follows = 0;

  constructor(store: Store, limits: StreamLimits) {
    this.#store = store;
    this.#limits = limits;
  }

  /**
   * A stream ready to `run`. A follow stream takes its place at once, or this throws a retryable
   * 503 when a cap is reached; nothing has been written to the client then.
   */
  open(options: StreamOptions): EventStream {
    const feed = options.follow ? this.#reserve(options.runId) : undefined;
    return new EventStream(options, {
      store: this.#store,
      scheduler: this.#scheduler,
      feed,
      readBytes: STREAM_BYTES.read,
      stepBytes: STREAM_BYTES.step,
      onEnd: feed ? () => this.#release(feed) : () => {},
    });
  }

  /**
   * A snapshot (not a follow stream) that one store read holds whole, within the read's byte
   * bound: its NDJSON body, answered in one piece. Undefined when it takes more than one read, or
   * a NodeRun stream meets a NodeRun whose place in the tree needs the store: then it streams.
   */
  async snapshot(options: StreamOptions): Promise<string | undefined> {
    if (options.follow) return undefined;
    const page = await this.#store.events(options.runId, options.afterSeq, MAX_EVENTS_PER_READ);
    // A Run no longer held has no events to give (the stream would end at once).
    if (!page) return '';
    const last = page.events.at(-1)?.seq ?? options.afterSeq;
    if (last < page.lastSeq) return undefined;
    const filter = options.subtreeOf === undefined ? undefined : new SubtreeFilter(options.subtreeOf);
    let body = '';
    for (const event of page.events) {
      const verdict = filter ? filter.verdict(event) : true;
      if (verdict === undefined) return undefined;
      if (!verdict) continue;
      body += `${event.line}\n`;
      if (body.length > STREAM_BYTES.read) return undefined;
    }
    return body;
  }

  /** Open follow streams, Runs with at least one, and the bytes of lines their feeds hold. */
  stats(): { followStreams: number; followedRuns: number; feedBytes: number } {
    let feedBytes = 0;
    for (const feed of this.#feeds.values()) feedBytes += feed.bytes;
    return { followStreams: this.#follows, followedRuns: this.#feeds.size, feedBytes };
  }

  #reserve(runId: string): RunFeed {
    const { maxFollowStreams, maxFollowStreamsPerRun } = this.#limits;
    if (this.#follows >= maxFollowStreams) {
      throw capReached(`The service already serves ${maxFollowStreams} follow streams`, {
        limit: 'follow_streams',
        max: maxFollowStreams,
      });
    }
    let feed = this.#feeds.get(runId);
    if ((feed?.readers ?? 0) >= maxFollowStreamsPerRun) {
      throw capReached(`Run '${runId}' already has ${maxFollowStreamsPerRun} follow streams`, {
        limit: 'follow_streams_per_run',
        max: maxFollowStreamsPerRun,
      });
    }
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

function capReached(message: string, details: Record<string, unknown>): ArpError {
  return new ArpError('service_unavailable', `${message}; retry later or read a snapshot (without follow)`, {
    details,
    retryable: true,
  });
}
