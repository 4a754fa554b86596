/**
 * Writes an event stream to a raw HTTP response as `application/x-ndjson`, respecting backpressure,
 * and ends it when the stream is done, the client disconnects or the server shuts down.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { EventSink, StreamOptions } from '../events/stream.js';
import type { EventStreams } from '../events/streams.js';

/** Open streams, so that shutdown can end them. */
export class StreamRegistry {
  readonly #open = new Set<ServerResponse>();
  /** Told about a stream that failed while writing (the response is then destroyed). */
  readonly onError: (error: unknown, requestId: string) => void;
  /** Told when a stream has ended, however it ended (its request bypasses the onSend hooks). */
  readonly #onEnded: ((reply: FastifyReply) => void)[] = [];

  constructor(onError: (error: unknown, requestId: string) => void = () => {}) {
    this.onError = onError;
  }

  /** Adds an observer of ended streams (metrics). */
  observeEnded(observer: (reply: FastifyReply) => void): void {
    this.#onEnded.push(observer);
  }

  ended(reply: FastifyReply): void {
    for (const observe of this.#onEnded) {
      try {
        observe(reply);
      } catch {
        // An observer's failure never breaks a stream.
      }
    }
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

const NDJSON = 'application/x-ndjson; charset=utf-8';

/**
 * Answers with the stream: a retryable 503 envelope when a follow stream would exceed a cap
 * (thrown before anything is written), else 200 NDJSON until the stream is complete. A snapshot
 * that one read of the log holds is answered as one body, with its length: one write to the socket
 * instead of headers, lines and the chunked ending apart.
 */
export async function sendEventStream(
  reply: FastifyReply,
  streams: EventStreams,
  registry: StreamRegistry,
  options: StreamOptions,
): Promise<void> {
  const whole = await streams.snapshot(options);
  if (whole !== undefined) {
    await reply.type(NDJSON).header('cache-control', 'no-cache').send(whole);
    return;
  }
  const stream = streams.open(options);
  const raw = reply.raw;
  try {
    reply.hijack();
    raw.writeHead(200, {
      'content-type': NDJSON,
      'cache-control': 'no-cache',
      'x-request-id': String(reply.request.id),
      ...(options.follow ? { 'x-accel-buffering': 'no' } : {}),
    });
    // Node sends headers with the first write; a follow stream may have nothing to write for a while.
    raw.flushHeaders();
    registry.add(raw);
    await stream.run(responseSink(raw));
    if (!raw.destroyed && !raw.writableEnded) raw.end();
  } catch (error) {
    registry.onError(error, String(reply.request.id));
    raw.destroy();
  } finally {
    stream.close();
    registry.ended(reply);
  }
}

function responseSink(raw: ServerResponse): EventSink {
  return {
    write: (bytes) => raw.write(bytes),
    cork: () => raw.cork(),
    uncork: () => raw.uncork(),
    // `writableEnded`: the server ended the response (shutdown) before the socket closed.
    isClosed: () => raw.destroyed || raw.writableEnded,
    listen(onDrain, onClose) {
      raw.on('drain', onDrain);
      raw.once('close', onClose);
      raw.once('finish', onClose);
      return () => {
        raw.off('drain', onDrain);
        raw.off('close', onClose);
        raw.off('finish', onClose);
      };
    },
  };
}
