/**
 * Reads a Run's event log through the Store in chunks bounded by bytes, and serialises each event
 * into its NDJSON line. A line is built once and then written as is to every stream that carries
 * it, so the serialisation cost of an event does not grow with the number of readers.
 */
import type { LoggedEvent, Store } from '../store/store.js';

export interface EventLine {
  readonly seq: number;
  /** `JSON.stringify(event)` and a newline, in UTF-8. */
  readonly bytes: Buffer;
  readonly nodeRunId: string | undefined;
  /** Parent of `nodeRunId` (for subtree streams); undefined for the root and run-level events. */
  readonly parentId: string | undefined;
}

export interface LineChunk {
  /** Consecutive events after the requested seq, in seq order (possibly none). */
  readonly lines: readonly EventLine[];
  /** True when the chunk reaches the last event committed when it was read. */
  readonly complete: boolean;
  /** True when the Run was finished (or no longer held) when the chunk was read. */
  readonly finished: boolean;
}

/** Most events asked of the store in one read, whatever their size. */
export const MAX_EVENTS_PER_READ = 256;

export function toLine(event: LoggedEvent): EventLine {
  return {
    seq: event.seq,
    bytes: Buffer.from(`${event.line}\n`),
    nodeRunId: event.nodeRunId,
    parentId: event.parentId,
  };
}

/**
 * Events after `afterSeq`: at most `limit` of them, and no more once `maxBytes` of lines are built
 * (always at least one, so that a single event larger than `maxBytes` still goes through).
 */
export async function readLines(
  store: Store,
  runId: string,
  afterSeq: number,
  maxBytes: number,
  limit: number,
): Promise<LineChunk> {
  const page = await store.events(runId, afterSeq, limit);
  if (!page) return { lines: [], complete: true, finished: true };
  const lines: EventLine[] = [];
  let bytes = 0;
  for (const event of page.events) {
    const line = toLine(event);
    lines.push(line);
    bytes += line.bytes.length;
    if (bytes >= maxBytes) break;
  }
  const last = lines.length > 0 ? lines[lines.length - 1]!.seq : afterSeq;
  return { lines, complete: last >= page.lastSeq, finished: page.finished };
}

/**
 * How many events to ask for next so that one read stays near `maxBytes`, judged by the largest
 * line of the previous chunk: small events are read in large groups, 1 MB events one at a time.
 */
export function nextLimit(previous: number, chunk: LineChunk, maxBytes: number): number {
  if (chunk.lines.length === 0) return previous;
  let largest = 1;
  for (const line of chunk.lines) largest = Math.max(largest, line.bytes.length);
  return Math.max(1, Math.min(MAX_EVENTS_PER_READ, Math.floor(maxBytes / largest)));
}
