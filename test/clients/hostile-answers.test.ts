/**
 * Hostile answers from peers: an Atomic Executor whose result nests deeper than any walk survives,
 * carries a number that overflows to Infinity, or is not UTF-8. Each fails the NodeRun with
 * `atomic_executor_invalid_response` and leaves it servable; nothing of the answer is stored. The
 * deepest answer within the limit is recorded and served back intact.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceClient, ServiceError } from '../../src/clients/http.js';
import { MAX_JSON_DEPTH } from '../../src/contract/json-limits.js';
import {
  completionError,
  getNodeRun,
  getRun,
  idle,
  runEvents,
  startRun,
  useDispatch,
} from '../dispatch/harness.js';
import type { TestApp } from '../helpers/app.js';
import { contractValidators } from '../helpers/ndjson.js';
import { nestedJson } from '../helpers/nested.js';

const h = useDispatch();

const servers: http.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A loopback peer answering every request 200 with the bytes `answer(node_run_id)` returns. */
async function rawPeer(answer: (nodeRunId: string) => string | Buffer): Promise<string> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const nodeRunId = text ? (JSON.parse(text) as { node_run_id?: string }).node_run_id : undefined;
      const payload = Buffer.from(answer(nodeRunId ?? ''));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': payload.length });
      res.end(payload);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An AtomicExecuteResult whose own nesting (the result object counted) is `depth`. */
const resultAtDepth = (depth: number) => (id: string) =>
  `{"node_run_id":"${id}","state":"succeeded","outputs":${nestedJson(depth - 1)}}`;

/** Runs an atomic root against an executor answering with `answer`, to the end. */
async function runAgainst(answer: (nodeRunId: string) => string | Buffer) {
  const t: TestApp = await h.app({ services: { atomicExecutor: await rawPeer(answer) } });
  const started = await startRun(t, {
    root_node_type_ref: { node_type_id: 'atomic.echo', version: '1.0.0' },
  });
  await idle(t);
  return {
    run: await getRun(t, started.run_id),
    root: await getNodeRun(t, started.root_node_run_id),
    events: await runEvents(t, started.run_id),
  };
}

describe('hostile Atomic Executor answers', () => {
  it.each([
    ['outputs nested 5,000 levels', resultAtDepth(5_000)],
    ['a result one level deeper than the limit', resultAtDepth(MAX_JSON_DEPTH + 1)],
  ])(
    '%s fail the NodeRun with atomic_executor_invalid_response, and it stays servable',
    async (_name, answer) => {
      const { run, root, events } = await runAgainst(answer);
      expect(root.state).toBe('failed');
      expect(root.outputs).toBeUndefined();
      expect(completionError(root)).toMatchObject({
        code: 'atomic_executor_invalid_response',
        details: { max_depth: MAX_JSON_DEPTH },
      });
      expect(run.state).toBe('failed');
      expect(events.at(-1)?.type).toBe('run_completed');
    },
  );

  it('records the deepest accepted result and serves its outputs back intact', async () => {
    const { root, events } = await runAgainst(resultAtDepth(MAX_JSON_DEPTH));
    expect(root.state).toBe('succeeded');
    expect(root.outputs).toEqual(JSON.parse(nestedJson(MAX_JSON_DEPTH - 1)));
    expect(events.at(-1)?.type).toBe('run_completed');
  });

  it.each([['1e309'], ['-1e400']])(
    'a result with the number %s fails the NodeRun instead of storing null',
    async (number) => {
      const { root } = await runAgainst(
        (id) => `{"node_run_id":"${id}","state":"succeeded","outputs":{"n":${number}}}`,
      );
      expect(root.state).toBe('failed');
      expect(root.outputs).toBeUndefined();
      expect(completionError(root)).toMatchObject({
        code: 'atomic_executor_invalid_response',
        details: { number },
      });
    },
  );

  it('a result with a "__proto__" key is rejected, not read through the prototype', async () => {
    const { root } = await runAgainst(
      (id) => `{"node_run_id":"${id}","state":"succeeded","__proto__":{"outputs":{"smuggled":true}}}`,
    );
    expect(root.state).toBe('failed');
    expect(root.outputs).toBeUndefined();
    expect(completionError(root)?.code).toBe('atomic_executor_invalid_response');
  });

  it('a result with U+0000 in a string fails the NodeRun (no store could keep it)', async () => {
    const { root } = await runAgainst(
      (id) => `{"node_run_id":"${id}","state":"succeeded","outputs":{"text":"a\\u0000b"}}`,
    );
    expect(root.state).toBe('failed');
    expect(root.outputs).toBeUndefined();
    expect(completionError(root)).toMatchObject({
      code: 'atomic_executor_invalid_response',
      details: { character: 'U+0000' },
    });
  });

  it('a result that is not UTF-8 fails the NodeRun instead of being decoded lossily', async () => {
    const { root } = await runAgainst((id) =>
      Buffer.concat([
        Buffer.from(`{"node_run_id":"${id}","state":"succeeded","outputs":{"text":"`),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"}}'),
      ]),
    );
    expect(root.state).toBe('failed');
    expect(completionError(root)?.code).toBe('atomic_executor_invalid_response');
  });
});

describe('every service answer', () => {
  it('is held to the same limits before it is parsed', async () => {
    const deep = nestedJson(MAX_JSON_DEPTH + 1);
    const base = await rawPeer(
      () => `{"node_type_id":"atomic.echo","version":"1.0.0","kind":"atomic","extensions":{"x.y":${deep}}}`,
    );
    const client = new ServiceClient({
      service: 'node_registry',
      baseUrl: base,
      timeoutMs: 10_000,
      validators: contractValidators(),
      retry: { retries: 0, backoff: () => 0 },
    });
    const call = client.call({
      operation: 'get_node_type',
      method: 'GET',
      path: '/v1/node-types/atomic.echo',
      responseSchema: 'NodeType',
      safeToRetry: true,
    });
    await expect(call).rejects.toBeInstanceOf(ServiceError);
    await expect(call).rejects.toMatchObject({
      code: 'node_registry_invalid_response',
      details: { max_depth: MAX_JSON_DEPTH },
    });
  });
});
