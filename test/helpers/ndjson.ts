/**
 * Socket-level helpers for the NDJSON event streams: plain `node:http` requests against a listening
 * app, a line reader that hands out one promise per line as the body arrives (so tests await lines
 * instead of sleeping), and RunEvent parsing checked against the contract.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { loadContract } from '../../src/contract/contract.js';
import { ContractValidators } from '../../src/contract/validators.js';
import type { RunEvent } from '../../src/core/model.js';

let validators: ContractValidators | undefined;

/** Validators for the contract's component schemas, compiled once per test file. */
export function contractValidators(): ContractValidators {
  validators ??= new ContractValidators(loadContract());
  return validators;
}

/** Parses NDJSON lines as RunEvents; throws naming the line when one is not a valid RunEvent. */
export function parseEvents(lines: readonly string[]): RunEvent[] {
  return lines.map((line, index) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`line ${index + 1} is not JSON: ${line.slice(0, 200)}`);
    }
    const errors = contractValidators().validate('RunEvent', value);
    if (errors.length > 0)
      throw new Error(
        `line ${index + 1} is not a RunEvent: ${JSON.stringify(errors)} in ${line.slice(0, 500)}`,
      );
    return value as RunEvent;
  });
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly body?: unknown;
  /** Defaults to a fresh connection per request (`agent: false`). */
  readonly agent?: http.Agent | false;
}

/** One complete request over a real socket; the body is read to its end. */
export function httpRequest(base: string, path: string, options: RequestOptions = {}): Promise<HttpResult> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, base),
      {
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(payload);
  });
}

/**
 * Splits a response body into lines as the bytes arrive. `next()` resolves with the next complete
 * line, or `undefined` once the body ended cleanly; it rejects when the body was cut off (the
 * connection closed before the end of the chunked body, or the last line has no newline).
 */
export class LineReader {
  readonly #res: IncomingMessage;
  readonly #lines: string[] = [];
  readonly #waiters: { resolve: (line: string | undefined) => void; reject: (error: Error) => void }[] = [];
  #partial = '';
  #ended = false;
  #failure: Error | undefined;
  /** Lines handed out so far plus lines queued. */
  #received = 0;

  constructor(res: IncomingMessage) {
    this.#res = res;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => this.#onData(chunk));
    res.once('end', () => {
      if (this.#partial !== '')
        this.#fail(new Error(`body ended inside a line: ${this.#partial.slice(0, 200)}`));
      else if (!res.complete) this.#fail(new Error('body ended before it was complete'));
      else {
        this.#ended = true;
        for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
      }
    });
    res.once('error', (error) => this.#fail(error));
    res.once('close', () => {
      if (!this.#ended) this.#fail(new Error('connection closed before the body ended'));
    });
  }

  /** True once the body ended cleanly and every line was handed out. */
  get done(): boolean {
    return this.#ended && this.#lines.length === 0;
  }

  /** Complete lines received so far (handed out or queued). */
  get received(): number {
    return this.#received;
  }

  next(): Promise<string | undefined> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Exactly `count` more lines; rejects if the body ends first. */
  async take(count: number): Promise<string[]> {
    const out: string[] = [];
    while (out.length < count) {
      const line = await this.next();
      if (line === undefined) throw new Error(`body ended after ${out.length} of ${count} expected lines`);
      out.push(line);
    }
    return out;
  }

  /** Every remaining line, up to the clean end of the body. */
  async rest(): Promise<string[]> {
    const out: string[] = [];
    for (let line = await this.next(); line !== undefined; line = await this.next()) out.push(line);
    return out;
  }

  /** Stops reading from the socket (the server then sees backpressure). */
  pause(): void {
    this.#res.pause();
  }

  resume(): void {
    this.#res.resume();
  }

  #onData(chunk: string): void {
    const parts = (this.#partial + chunk).split('\n');
    this.#partial = parts.pop() ?? '';
    for (const line of parts) {
      this.#received += 1;
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.#lines.push(line);
    }
  }

  #fail(error: Error): void {
    if (this.#failure || this.#ended) return;
    this.#failure = error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }
}

export interface OpenStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly res: IncomingMessage;
  readonly lines: LineReader;
  /** Closes the client side of the connection at once. */
  destroy(): void;
}

export interface PendingStream {
  readonly req: http.ClientRequest;
  /** Resolves when the response status and headers arrived. */
  readonly response: Promise<OpenStream>;
}

/** Sends a GET without waiting for anything; `response` resolves once the status and headers arrived. */
export function startStream(base: string, path: string, agent: http.Agent | false = false): PendingStream {
  let req!: http.ClientRequest;
  const response = new Promise<OpenStream>((resolve, reject) => {
    req = http.get(new URL(path, base), { agent }, (res) => {
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        res,
        lines: new LineReader(res),
        destroy: () => {
          res.destroy();
          req.destroy();
        },
      });
    });
    req.once('error', reject);
  });
  return { req, response };
}

/** Sends a GET and resolves as soon as the response headers arrived; the body is read through `lines`. */
export function openStream(
  base: string,
  path: string,
  agent: http.Agent | false = false,
): Promise<OpenStream> {
  return startStream(base, path, agent).response;
}
