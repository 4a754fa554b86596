/**
 * The server side of event-stream responses, seen from a test: every `/events` response of a
 * listening app is captured synchronously in the http server's 'request' event (after Fastify's own
 * listener, before the handler writes anything), and its `write` is wrapped to record how much the
 * server holds in memory for it. Nothing here sleeps.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { expect } from 'vitest';
import type { TestApp } from './app.js';

export interface WriteStats {
  /** Largest `writableLength` (bytes held in this process for the response) after any write. */
  maxBuffered: number;
  /** Writes that returned false (the writer was told to wait for 'drain'). */
  refused: number;
  /** Complete NDJSON lines handed to the response so far. */
  lines: number;
  /** Calls to `write`. */
  writes: number;
}

export interface ServerStream {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly stats: WriteStats;
}

const NEWLINE = 0x0a;

function countLines(chunk: unknown): number {
  if (typeof chunk === 'string') return chunk.split('\n').length - 1;
  if (!(chunk instanceof Uint8Array)) return 0;
  let count = 0;
  for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) count += 1;
  return count;
}

function instrument(req: IncomingMessage, res: ServerResponse, onWrite: () => void): ServerStream {
  const stats: WriteStats = { maxBuffered: 0, refused: 0, lines: 0, writes: 0 };
  const write = res.write as (...args: unknown[]) => boolean;
  res.write = function (this: ServerResponse, ...args: unknown[]) {
    const ok = write.apply(this, args);
    stats.writes += 1;
    stats.lines += countLines(args[0]);
    stats.maxBuffered = Math.max(stats.maxBuffered, this.writableLength);
    if (!ok) stats.refused += 1;
    onWrite();
    return ok;
  } as ServerResponse['write'];
  return { req, res, stats };
}

/** Captures every event-stream response of `t` from now on, until `stop()`. */
export class StreamWatch {
  readonly streams: ServerStream[] = [];
  /** Writes to any captured response, in total. */
  writes = 0;
  readonly #t: TestApp;
  readonly #waiters: ((stream: ServerStream) => void)[] = [];
  readonly #listener = (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.includes('/events')) return;
    const stream = instrument(req, res, () => {
      this.writes += 1;
    });
    this.streams.push(stream);
    this.#waiters.shift()?.(stream);
  };

  constructor(t: TestApp) {
    this.#t = t;
    t.app.server.on('request', this.#listener);
  }

  /** The next event-stream response the server receives. */
  next(): Promise<ServerStream> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  stop(): void {
    this.#t.app.server.off('request', this.#listener);
  }
}

/** The server side of the next event-stream request (instrumented). */
export function nextServerStream(t: TestApp): Promise<ServerStream> {
  const watch = new StreamWatch(t);
  return watch.next().finally(() => watch.stop());
}

/**
 * Waits (checking once per event-loop turn, never sleeping) until the server holds unsent bytes and
 * waits for 'drain'; gives up after `boundMs`, which only bounds a broken run (a store that reads
 * from a database needs many more turns than one in memory).
 */
export async function untilServerWaitsForDrain(res: ServerResponse, boundMs = 20_000): Promise<void> {
  const giveUp = Date.now() + boundMs;
  while (!(res.writableNeedDrain && res.writableLength > 0) && Date.now() < giveUp) {
    await new Promise(setImmediate);
  }
  expect(res.writableNeedDrain, 'the server waits for drain').toBe(true);
  expect(res.writableLength, 'bytes held by the server').toBeGreaterThan(0);
}

/** Bounded wait (event-loop turns, no timer) until `condition()` holds. */
export async function untilTrue(condition: () => boolean, what: string, turns = 5000): Promise<void> {
  for (let turn = 0; turn < turns && !condition(); turn++) await new Promise(setImmediate);
  expect(condition(), what).toBe(true);
}
