/**
 * Following a Run's events live: `GET /v1/runs/{id}/events?follow=true&after_seq=N` read as NDJSON.
 * The coordinator ends a follow stream once the Run is finished and its last event is written; a
 * stream that ends or fails before that (a proxy timeout, a restart, a dropped connection) is opened
 * again after the last event seen, with a growing delay between failed attempts. Events are handed
 * on in `seq` order, each once. Authentication failures are not retried: they need a new token.
 */
import type { RunEvent } from '../../src/gen/contract.js';
import { lineBatches } from './ndjson.js';

export type FollowStatus = 'connecting' | 'live' | 'reconnecting' | 'ended';

export interface FollowOptions {
  /** Opens the stream after `afterSeq` (0 = from the start). */
  open(afterSeq: number, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
  /** New events, in seq order, one call per network chunk. */
  onEvents(events: RunEvent[]): void;
  /** Asked when a stream ended cleanly: true when the Run is finished (nothing more will come). */
  isFinished(): Promise<boolean>;
  onStatus?(status: FollowStatus, error?: unknown): void;
  /** Errors that end following instead of being retried (e.g. 401, 404). */
  isFatal?(error: unknown): boolean;
  /** Waits `ms` (rejects or resolves early when aborted); injected so tests need no clock. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
  readonly signal: AbortSignal;
  /** Start after this seq (default 0). */
  readonly afterSeq?: number;
}

export const RETRY_DELAYS_MS = [500, 1000, 2000, 5000, 10_000] as const;

/** Resolves when the Run is finished or `signal` aborts; rejects with a fatal error. */
export async function followEvents(options: FollowOptions): Promise<void> {
  const { signal } = options;
  let afterSeq = options.afterSeq ?? 0;
  let failures = 0;
  options.onStatus?.('connecting');
  while (!signal.aborted) {
    let error: unknown;
    try {
      const stream = await options.open(afterSeq, signal);
      options.onStatus?.('live');
      for await (const lines of lineBatches(stream)) {
        const events = parseNew(lines, afterSeq);
        if (events.length === 0) continue;
        afterSeq = events[events.length - 1]!.seq;
        failures = 0;
        options.onEvents(events);
      }
      if (signal.aborted) return;
      if (await options.isFinished()) {
        options.onStatus?.('ended');
        return;
      }
    } catch (caught) {
      if (signal.aborted) return;
      if (options.isFatal?.(caught)) throw caught;
      error = caught;
    }
    options.onStatus?.('reconnecting', error);
    const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)]!;
    failures += 1;
    await options.wait(delay, signal).catch(() => {});
  }
}

/** The events of `lines` after `afterSeq`, skipping lines that are not events. */
export function parseNew(lines: readonly string[], afterSeq: number): RunEvent[] {
  const events: RunEvent[] = [];
  let last = afterSeq;
  for (const line of lines) {
    let event: RunEvent;
    try {
      event = JSON.parse(line) as RunEvent;
    } catch {
      continue;
    }
    if (typeof event?.seq !== 'number' || event.seq <= last) continue;
    last = event.seq;
    events.push(event);
  }
  return events;
}
