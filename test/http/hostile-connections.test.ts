/**
 * Hostile connections over real sockets: requests that never finish arriving (slowloris), idle
 * kept-alive connections, more connections than the cap, and uploaders that send a body over the
 * limit without reading the answer first. Long-lived event streams must survive all of it.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { AppOptions } from '../../src/app.js';
import { ref, type TestApp, useApp } from '../helpers/app.js';
import { openStream, parseEvents } from '../helpers/ndjson.js';

const newApp = useApp();

async function listening(options: Partial<AppOptions>): Promise<{ t: TestApp; port: number; base: string }> {
  const t = await newApp({ options });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as { port: number };
  return { t, port, base: `http://127.0.0.1:${port}` };
}

interface ParsedResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** Bytes of the whole response, to find what follows it. */
  readonly length: number;
}

/** The first complete HTTP response in `text` (bodies framed by content-length), or undefined. */
function parseResponse(text: string): ParsedResponse | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (text.length < end + 4 + length) return undefined;
  return {
    status: Number(statusLine?.split(' ')[1]),
    headers,
    body: text.slice(end + 4, end + 4 + length),
    length: end + 4 + length,
  };
}

/** A raw client connection that records everything the server sends. */
class RawClient {
  readonly socket: net.Socket;
  readonly closed: Promise<void>;
  #text = '';
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.#text += chunk;
      for (const wake of this.#waiters.splice(0)) wake();
    });
    // Resets are part of what these tests provoke; what matters is what was received.
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.closed.then(() => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  get text(): string {
    return this.#text;
  }

  /** Resolves with the first complete response, or rejects when the connection closes before it. */
  async response(from = 0): Promise<ParsedResponse> {
    for (;;) {
      const parsed = parseResponse(this.#text.slice(from));
      if (parsed) return parsed;
      if (this.socket.destroyed) throw new Error(`closed after ${JSON.stringify(this.#text)}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (error) => (error ? reject(error) : resolve())),
    );
  }
}

const startBody = JSON.stringify({ root_node_type_ref: ref('composite.root'), input: {} });

const SLOW_REQUESTS: [string, string][] = [
  ['headers that never end', 'POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: appl'],
  [
    'a body that never reaches its Content-Length',
    `POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ncontent-length: ${startBody.length + 10}\r\n\r\n${startBody}`,
  ],
  [
    'a chunked body that never ends',
    'POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"roo\r\n',
  ],
];

describe('slow requests', () => {
  it.each(SLOW_REQUESTS)(
    '%s: every such connection gets a 408 envelope and is closed',
    async (_name, request) => {
      const { port } = await listening({ requestTimeoutMs: 100 });
      const clients = Array.from({ length: 20 }, () => new RawClient(port));
      await Promise.all(clients.map((client) => client.write(request)));
      for (const client of clients) {
        await client.closed;
        const answer = parseResponse(client.text);
        expect(answer?.status, client.text).toBe(408);
        expect(JSON.parse(answer!.body).error.code).toBe('request_timeout');
      }
    },
  );

  it('does not cut a follow stream that lives longer than the request timeout', async () => {
    const { t, port, base } = await listening({ requestTimeoutMs: 50 });
    const started = await t.request({ method: 'POST', url: '/v1/runs', payload: JSON.parse(startBody) });
    const run = started.json() as { run_id: string };
    const stream = await openStream(base, `/v1/runs/${run.run_id}/events?follow=true`);
    expect(stream.status).toBe(200);
    expect(await stream.lines.take(2)).toHaveLength(2);
    // A slow request opened after the stream is cut by the timeout: by then the stream is older
    // than the timeout and the server has checked its connections since.
    const slow = new RawClient(port);
    await slow.write(SLOW_REQUESTS[1]![1]);
    await slow.closed;
    expect(parseResponse(slow.text)?.status).toBe(408);

    const canceled = await t.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` });
    expect(canceled.statusCode).toBe(200);
    const rest = parseEvents(await stream.lines.rest());
    expect(rest.map((event) => event.type)).toEqual(['run_completed']);
  });

  it('closes a kept-alive connection once it has been idle for the keep-alive timeout', async () => {
    const { port } = await listening({ keepAliveTimeoutMs: 50 });
    const client = new RawClient(port);
    await client.write('GET /v1/health HTTP/1.1\r\nhost: rc\r\n\r\n');
    const answer = await client.response();
    expect(answer.status).toBe(200);
    expect(answer.headers.connection).toBe('keep-alive');
    await client.closed;
    expect(client.text.length).toBe(answer.length);
  });
});

describe('connection cap', () => {
  it('refuses connections beyond the cap while the others keep working', async () => {
    const { t, port } = await listening({ maxConnections: 2 });
    const serverSideClosed: Promise<void>[] = [];
    t.app.server.on('connection', (socket: net.Socket) =>
      serverSideClosed.push(new Promise((resolve) => socket.once('close', () => resolve()))),
    );
    const health = 'GET /v1/health HTTP/1.1\r\nhost: rc\r\n\r\n';
    const [a, b] = [new RawClient(port), new RawClient(port)];
    for (const client of [a, b]) {
      await client.write(health);
      expect((await client.response()).status).toBe(200);
    }

    const refused = new RawClient(port);
    await refused.closed;
    expect(refused.text).toBe('');

    a.socket.end();
    await serverSideClosed[0];
    const next = new RawClient(port);
    await next.write(health);
    expect((await next.response()).status).toBe(200);
    const before = b.text.length;
    await b.write(health);
    expect((await b.response(before)).status).toBe(200);
  });
});

describe('bodies over the limit', () => {
  const limit = 1024;
  const big = Buffer.alloc(8 * 1024 * 1024, 0x20);

  /** Sends all of `head` and `body` before reading anything, as uploaders that don't wait do. */
  async function uploadWithoutReading(port: number, head: string, body: Buffer) {
    const client = new RawClient(port);
    client.socket.pause();
    await client.write(head);
    await client.write(body);
    client.socket.resume();
    return client;
  }

  it('a client that sends a large declared body without waiting reads the 413 envelope', async () => {
    const { port } = await listening({ bodyLimit: limit });
    const client = await uploadWithoutReading(
      port,
      `POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ncontent-length: ${big.length}\r\n\r\n`,
      big,
    );
    const answer = await client.response();
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('payload_too_large');

    // The body was drained, so the connection carries the next request.
    await client.write('GET /v1/health HTTP/1.1\r\nhost: rc\r\n\r\n');
    expect((await client.response(answer.length)).status).toBe(200);
  });

  it('a client that streams a chunked body past the limit without waiting reads the 413 envelope', async () => {
    const { port } = await listening({ bodyLimit: limit });
    const chunked = Buffer.concat([
      Buffer.from(`${big.length.toString(16)}\r\n`),
      big,
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const client = await uploadWithoutReading(
      port,
      'POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
      chunked,
    );
    const answer = await client.response();
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('payload_too_large');
    await client.write('GET /v1/health HTTP/1.1\r\nhost: rc\r\n\r\n');
    expect((await client.response(answer.length)).status).toBe(200);
  });

  it('shutdown does not wait for a connection kept to drain a refused body', async () => {
    const { t, port } = await listening({ bodyLimit: limit });
    const client = new RawClient(port);
    await client.write(
      `POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ncontent-length: ${2 * limit}\r\n\r\n`,
    );
    expect((await client.response()).status).toBe(413);
    const closed = t.app.close();
    // The rest of the body arrives while the server shuts down; then nothing holds the connection.
    await client.write(Buffer.alloc(2 * limit, 0x20));
    await closed;
    await client.closed;
  });

  it('a client that stops sending after its 413 is closed at the request timeout with no second answer', async () => {
    const { port } = await listening({ bodyLimit: limit, requestTimeoutMs: 100 });
    const client = new RawClient(port);
    await client.write(
      `POST /v1/runs HTTP/1.1\r\nhost: rc\r\ncontent-type: application/json\r\ncontent-length: ${big.length}\r\n\r\n{"a":`,
    );
    const answer = await client.response();
    expect(answer.status).toBe(413);
    await client.closed;
    expect(client.text.length).toBe(answer.length);
  });
});
