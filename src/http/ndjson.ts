/**
 * Writes an event stream to a raw HTTP response as `application/x-ndjson`, respecting backpressure,
 * and ends it when the stream is done, the client disconnects or the server shuts down.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { type StreamOptions, streamEvents } from '../events/stream.js';
import type { Store } from '../store/store.js';

/** Open streams, so that shutdown can end them. */
export class StreamRegistry {
  readonly #open = new Set<ServerResponse>();
  /** Told about a stream that failed while writing (the response is then destroyed). */
  readonly onError: (error: unknown, requestId: string) => void;

  constructor(onError: (error: unknown, requestId: string) => void = () => {}) {
    this.onError = onError;
  }

  add(raw: ServerResponse): void {
    if (raw.destroyed || raw.writableFinished) return;
    this.#open.add(raw);
    raw.once('close', () => this.#open.delete(raw));
  }

  /**
   * Ends every open stream cleanly and resolves once each has been handed to its socket, so that
   * closing the server afterwards cannot cut off a client that is still reading (the client sees a
   * complete NDJSON body). A client that never reads is bounded by the shutdown timeout.
   */
  async endAll(): Promise<void> {
    await Promise.all(
      [...this.#open].map(
        (raw) =>
          new Promise<void>((resolve) => {
            if (raw.destroyed || raw.writableFinished) return resolve();
            raw.once('finish', resolve);
            raw.once('close', resolve);
            raw.end();
          }),
      ),
    );
  }
}

export async function sendEventStream(
  reply: FastifyReply,
  store: Store,
  registry: StreamRegistry,
  options: StreamOptions,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'application/x-ndjson; charset=utf-8',
    'cache-control': 'no-cache',
    'x-request-id': String(reply.request.id),
    ...(options.follow ? { 'x-accel-buffering': 'no' } : {}),
  });
  // Node sends headers with the first write; a follow stream may have nothing to write for a while.
  raw.flushHeaders();
  registry.add(raw);
  const closed = new Promise<void>((resolve) => raw.once('close', resolve));
  // `finish` fires when the server ends the stream (shutdown) before the socket closes.
  const ended = new Promise<void>((resolve) => raw.once('finish', resolve));
  const gone = Promise.race([closed, ended]);
  const isClosed = () => raw.destroyed || raw.writableEnded;
  try {
    await streamEvents(
      store,
      {
        write: (chunk) => raw.write(chunk),
        drained: () => waitForDrain(raw),
        closed: gone,
        isClosed,
      },
      options,
    );
    if (!isClosed()) raw.end();
  } catch (error) {
    registry.onError(error, String(reply.request.id));
    raw.destroy();
  }
}

/** Resolves on `drain`, or when the response is gone; leaves no listener behind. */
function waitForDrain(raw: ServerResponse): Promise<void> {
  // Gone already (the client left, or shutdown ended the response, while the stream was reading
  // from the store): that is why the write was refused, and the events waited for have passed.
  if (raw.destroyed || raw.writableFinished) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      for (const event of ['drain', 'close', 'finish']) raw.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'close', 'finish']) raw.on(event, done);
  });
}
