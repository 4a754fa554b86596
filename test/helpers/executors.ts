/**
 * Loopback fakes for the services the coordinator calls (Atomic/Composite Executor, Node Registry,
 * PDP): real `node:http` servers on 127.0.0.1, port 0, that record every request and answer through
 * per-route handlers a test controls. A handler may answer at once, hold its answer until the test
 * releases a promise (`Gates`), hang, or close the socket. Tests wait on `waitFor` (resolved when a
 * request arrives) or on the recorded `settled` promise, never on a clock.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterEach } from 'vitest';

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export interface RecordedRequest {
  /** Arrival order on this server, from 1. */
  readonly index: number;
  readonly method: string;
  /** Path with query string, exactly as received. */
  readonly url: string;
  /** Path without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  readonly body: unknown;
  /** Resolves when the response was written (`answered`) or the connection went away first (`closed`). */
  readonly settled: Promise<'answered' | 'closed'>;
}

export type Reply =
  | {
      readonly status?: number;
      /** Sent as JSON (content-type application/json). */
      readonly json?: unknown;
      /** Sent verbatim (content-type text/plain unless `headers` says otherwise). */
      readonly text?: string;
      readonly headers?: Record<string, string>;
      /** Runs once the response has been written (e.g. a composite executor starting its work). */
      readonly after?: () => void;
    }
  /** Closes the connection without answering (a reset as the client sees it). */
  | { readonly destroy: true }
  /** Never answers; the connection is closed when the server closes. */
  | { readonly hang: true };

export type Handler = (request: RecordedRequest) => Reply | Promise<Reply>;

interface Route {
  readonly method: string;
  readonly match: string | RegExp;
  readonly handler: Handler;
}

const NOT_FOUND: Reply = { status: 404, json: { error: { code: 'not_found', message: 'no such route' } } };

export class FakeService {
  readonly requests: RecordedRequest[] = [];
  readonly #server: http.Server;
  readonly #routes: Route[] = [];
  readonly #waiters: { predicate: (r: RecordedRequest) => boolean; count: number; done: Deferred<void> }[] =
    [];
  #inFlight = 0;
  #maxInFlight = 0;
  #url = '';

  constructor() {
    this.#server = http.createServer((req, res) => this.#onRequest(req, res));
  }

  /** `http://127.0.0.1:<port>` once listening. */
  get url(): string {
    return this.#url;
  }

  /** Requests received and not yet answered (or closed). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Most requests ever in flight at once. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const { port } = this.#server.address() as AddressInfo;
    this.#url = `http://127.0.0.1:${port}`;
    return this;
  }

  /**
   * Routes `method` + path to `handler`; a string matches the path exactly (query excluded), a
   * RegExp is tested against the path. Later routes win over earlier ones, so a test can override.
   */
  on(method: string, match: string | RegExp, handler: Handler): this {
    this.#routes.unshift({ method, match, handler });
    return this;
  }

  /** Requests matching `predicate` (all when omitted). */
  received(predicate: (r: RecordedRequest) => boolean = () => true): RecordedRequest[] {
    return this.requests.filter(predicate);
  }

  /** Resolves once at least `count` requests matching `predicate` have arrived. */
  async waitFor(
    count: number,
    predicate: (r: RecordedRequest) => boolean = () => true,
  ): Promise<RecordedRequest[]> {
    if (this.received(predicate).length < count) {
      const done = deferred<void>();
      this.#waiters.push({ predicate, count, done });
      await done.promise;
    }
    return this.received(predicate);
  }

  async close(): Promise<void> {
    for (const waiter of this.#waiters.splice(0))
      waiter.done.reject(new Error(`fake service closed while waiting for ${waiter.count} requests`));
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Replies to a client that went away are dropped, never thrown.
    res.on('error', () => {});
    req.on('error', () => {});
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const url = req.url ?? '/';
      const parsed = new URL(url, 'http://fake.invalid');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      const settled = deferred<'answered' | 'closed'>();
      this.#inFlight++;
      this.#maxInFlight = Math.max(this.#maxInFlight, this.#inFlight);
      let open = true;
      const finish = (how: 'answered' | 'closed') => {
        if (!open) return;
        open = false;
        this.#inFlight--;
        settled.resolve(how);
      };
      res.once('finish', () => finish('answered'));
      res.once('close', () => finish('closed'));
      const recorded: RecordedRequest = {
        index: this.requests.length + 1,
        method: req.method ?? 'GET',
        url,
        path: parsed.pathname,
        query: parsed.searchParams,
        headers: req.headers,
        text,
        body,
        settled: settled.promise,
      };
      this.requests.push(recorded);
      this.#notify();
      const route = this.#routes.find(
        (r) =>
          r.method === recorded.method &&
          (typeof r.match === 'string' ? r.match === recorded.path : r.match.test(recorded.path)),
      );
      Promise.resolve()
        .then(() => (route ? route.handler(recorded) : NOT_FOUND))
        .then(
          (reply) => this.#send(req, res, reply),
          () => this.#send(req, res, { status: 500, json: { error: { code: 'fake_failed', message: 'x' } } }),
        );
    });
  }

  #send(req: http.IncomingMessage, res: http.ServerResponse, reply: Reply): void {
    if (res.destroyed || res.writableEnded) return;
    if ('hang' in reply) return;
    if ('destroy' in reply) {
      req.socket.destroy();
      return;
    }
    const status = reply.status ?? 200;
    const payload = reply.json !== undefined ? JSON.stringify(reply.json) : (reply.text ?? '');
    const type =
      reply.json !== undefined ? 'application/json' : reply.text !== undefined ? 'text/plain' : undefined;
    res.writeHead(status, {
      ...(type ? { 'content-type': type } : {}),
      'content-length': String(Buffer.byteLength(payload)),
      ...reply.headers,
    });
    if (reply.after) res.once('finish', reply.after);
    res.end(payload);
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) {
      if (this.received(waiter.predicate).length >= waiter.count) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.done.resolve();
      }
    }
  }
}

/** Starts a fake service on 127.0.0.1:0. */
export function startFake(): Promise<FakeService> {
  return new FakeService().listen();
}

/**
 * Fake services and undici agents for one test file, closed after each test (agents first, so that
 * no pooled connection outlives its server).
 */
export function useFakes(): { fake(): Promise<FakeService>; agent(): Agent } {
  let fakes: FakeService[] = [];
  let agents: Agent[] = [];
  afterEach(async () => {
    const [f, a] = [fakes, agents];
    fakes = [];
    agents = [];
    await Promise.all(a.map((agent) => agent.destroy()));
    await Promise.all(f.map((fake) => fake.close()));
  });
  return {
    async fake() {
      const fake = await startFake();
      fakes.push(fake);
      return fake;
    },
    agent() {
      const agent = new Agent();
      agents.push(agent);
      return agent;
    },
  };
}

/**
 * Answers held by key (usually a node_run_id) until the test releases them. A handler returns
 * `gates.wait(key)`; `release(key, reply)` answers it, before or after the request arrived.
 */
export class Gates<T = Reply> {
  readonly #gates = new Map<string, Deferred<T>>();

  #gate(key: string): Deferred<T> {
    let gate = this.#gates.get(key);
    if (!gate) {
      gate = deferred<T>();
      this.#gates.set(key, gate);
    }
    return gate;
  }

  wait(key: string): Promise<T> {
    return this.#gate(key).promise;
  }

  release(key: string, value: T): void {
    this.#gate(key).resolve(value);
  }
}

/** A port on 127.0.0.1 that was free a moment ago (for a URL nothing listens on, or to listen on later). */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `http://127.0.0.1:<port>` where nothing listens: connections are refused. */
export async function closedPortUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

export interface JsonResult {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

/** One JSON request over a fresh connection, as an ARP peer (e.g. a composite executor) would send it. */
export function callJson(
  base: string,
  path: string,
  options: { method?: string; body?: unknown; token?: string } = {},
): Promise<JsonResult> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, base),
      {
        method: options.method ?? 'GET',
        agent: false,
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.once('end', () => {
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, text });
        });
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(payload);
  });
}

/** Executor and registry payloads, built the way a well-behaved peer sends them. */
export const replies = {
  succeeded: (nodeRunId: string, outputs: Record<string, unknown> = {}): Reply => ({
    json: { node_run_id: nodeRunId, state: 'succeeded', outputs },
  }),
  failed: (nodeRunId: string, code: string, message = 'it broke'): Reply => ({
    json: { node_run_id: nodeRunId, state: 'failed', error: { code, message } },
  }),
  envelope: (status: number, code: string, message = 'downstream failure'): Reply => ({
    status,
    json: { error: { code, message } },
  }),
};
