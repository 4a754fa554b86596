/**
 * Reads a Run's events from the store in seq order and hands them to a sink, as a snapshot or
 * following new events until the Run is finished. Nothing is queued per subscriber: the store's
 * event log is the buffer, and a slow sink simply makes the reader wait, so memory stays bounded.
 */
import type { LoggedEvent, Store } from '../store/store.js';

export interface EventSink {
  /** Writes one chunk; false means "wait for drain before writing more". */
  write(chunk: string): boolean;
  /** Resolves when the sink can take more, or when it closed. */
  drained(): Promise<void>;
  /** Resolves when the sink closed (client went away or the server is shutting down). */
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

export interface StreamOptions {
  readonly runId: string;
  /** Only events with seq > afterSeq. */
  readonly afterSeq: number;
  readonly follow: boolean;
  /** Restricts the stream to the events of this NodeRun and its descendants. */
  readonly subtreeOf?: string;
}

const BATCH = 256;

/** Membership test for "this NodeRun or one of its descendants", memoised per stream. */
function subtreeFilter(store: Store, rootId: string) {
  const known = new Map<string, boolean>([[rootId, true]]);
  return async (event: LoggedEvent): Promise<boolean> => {
    const start = event.nodeRunId;
    if (start === undefined) return false;
    const path: string[] = [];
    let verdict: boolean | undefined;
    for (let id: string | undefined = start; id !== undefined; ) {
      verdict = known.get(id);
      if (verdict !== undefined) break;
      path.push(id);
      id = (await store.getNodeRun(id))?.nodeRun.parent_node_run_id;
    }
    for (const id of path) known.set(id, verdict ?? false);
    return verdict ?? false;
  };
}

interface Batch {
  readonly lines: string;
  readonly cursor: number;
  /** True when every committed event has been read. */
  readonly caughtUp: boolean;
  /** True when the reader has seen every event and nothing more will come. */
  readonly done: boolean;
}

async function readBatch(
  store: Store,
  options: StreamOptions,
  cursor: number,
  include: ((event: LoggedEvent) => Promise<boolean>) | undefined,
): Promise<Batch> {
  const page = await store.events(options.runId, cursor, BATCH);
  if (!page) return { lines: '', cursor, caughtUp: true, done: true };
  let lines = '';
  for (const event of page.events) if (!include || (await include(event))) lines += `${event.line}\n`;
  const next = page.events.length > 0 ? page.events[page.events.length - 1]!.seq : cursor;
  const caughtUp = next >= page.lastSeq;
  return { lines, cursor: next, caughtUp, done: caughtUp && (!options.follow || page.finished) };
}

export async function streamEvents(store: Store, sink: EventSink, options: StreamOptions): Promise<void> {
  const include = options.subtreeOf === undefined ? undefined : subtreeFilter(store, options.subtreeOf);
  let cursor = options.afterSeq;
  let changed = false;
  let wake: (() => void) | undefined;
  const unsubscribe = options.follow
    ? store.subscribe(options.runId, () => {
        changed = true;
        wake?.();
      })
    : () => {};
  sink.closed.then(
    () => wake?.(),
    () => wake?.(),
  );
  try {
    while (!sink.isClosed()) {
      changed = false;
      const batch = await readBatch(store, options, cursor, include);
      cursor = batch.cursor;
      if (batch.lines && !sink.write(batch.lines)) await sink.drained();
      if (batch.done) return;
      // A commit may have landed while this batch was written; only sleep when there is nothing new.
      if (!batch.caughtUp || changed || sink.isClosed()) continue;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    unsubscribe();
  }
}
