/**
 * The shared outgoing-HTTP layer (`ServiceClient`) against loopback fake servers: base-URL
 * normalisation, retries only where safe, timeouts, error mapping to `<service>_<kind>` codes
 * without the peer's address, and contract validation of what is sent and what comes back.
 */
import { describe, expect, it } from 'vitest';
import {
  type CallOptions,
  type CallRecord,
  jitteredBackoff,
  normalizeBaseUrl,
  ServiceClient,
  type ServiceClientOptions,
  ServiceError,
} from '../../src/clients/http.js';
import { closedPortUrl, deferred, type FakeService, type Reply, useFakes } from '../helpers/executors.js';
import { contractValidators } from '../helpers/ndjson.js';

const { fake, agent } = useFakes();

const TYPE_PATH = '/v1/node-types/atomic.echo';
const getType: CallOptions = {
  operation: 'get_node_type',
  method: 'GET',
  path: `${TYPE_PATH}?version=1.0.0`,
  responseSchema: 'NodeType',
  safeToRetry: true,
};
const nodeType = { node_type_id: 'atomic.echo', version: '1.0.0', kind: 'atomic' };
const policyRequest = { action: 'run.start', run_id: 'r1' };
const decide: CallOptions = {
  operation: 'decide',
  method: 'POST',
  path: '/v1/policy:decide',
  body: policyRequest,
  requestSchema: 'PolicyDecisionRequest',
  responseSchema: 'PolicyDecision',
  safeToRetry: false,
};

function client(baseUrl: string, overrides: Partial<ServiceClientOptions> = {}) {
  const backoffs: number[] = [];
  const http = new ServiceClient({
    service: 'node_registry',
    baseUrl,
    timeoutMs: 10_000,
    validators: contractValidators(),
    dispatcher: agent(),
    retry: {
      retries: 2,
      backoff: (attempt) => {
        backoffs.push(attempt);
        return 0;
      },
    },
    ...overrides,
  });
  return { http, backoffs };
}

/** A fake answering the n-th request (1-based) with `replies[n - 1]`, and the last one after that. */
async function scripted(method: string, path: string, replies: Reply[]): Promise<FakeService> {
  const server = await fake();
  server.on(method, path, (r) => replies[Math.min(r.index, replies.length) - 1]!);
  return server;
}

/** The ServiceError a call fails with (fails the test if it succeeds or throws something else). */
async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  expect(
    'error' in outcome ? outcome.error : undefined,
    `resolved with ${JSON.stringify(outcome)}`,
  ).toBeInstanceOf(ServiceError);
  return (outcome as { error: ServiceError }).error;
}

const envelope = (status: number, code: string, message = 'downstream says no'): Reply => ({
  status,
  json: { error: { code, message } },
});

describe('normalizeBaseUrl', () => {
  it.each([
    ['http://127.0.0.1:8082', 'http://127.0.0.1:8082'],
    ['http://127.0.0.1:8082/', 'http://127.0.0.1:8082'],
    ['http://127.0.0.1:8082/v1', 'http://127.0.0.1:8082'],
    ['http://127.0.0.1:8082/v1/', 'http://127.0.0.1:8082'],
    ['  http://127.0.0.1:8082//  ', 'http://127.0.0.1:8082'],
    ['http://executor.internal/arp/v1', 'http://executor.internal/arp'],
    ['http://executor.internal/arp/', 'http://executor.internal/arp'],
    ['http://executor.internal/v10', 'http://executor.internal/v10'],
    ['https://executor.internal/apiv1', 'https://executor.internal/apiv1'],
  ])('%j → %j', (raw, expected) => {
    expect(normalizeBaseUrl(raw)).toBe(expected);
  });

  it('is applied by the client, so /v1 is never doubled on the wire', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ json: nodeType }]);
    const { http } = client(`${server.url}/v1/`);
    expect(http.baseUrl).toBe(server.url);
    expect(await http.call(getType)).toEqual({ status: 200, body: nodeType });
    expect(server.requests.map((r) => r.url)).toEqual([`${TYPE_PATH}?version=1.0.0`]);
  });
});

describe('retries', () => {
  it.each([502, 503, 504])('retries a safe call on %i up to `retries` times, then fails', async (status) => {
    const server = await scripted('GET', TYPE_PATH, [envelope(status, 'busy')]);
    const { http, backoffs } = client(server.url);
    const error = await failure(http.call(getType));
    expect(error.code).toBe('node_registry_error');
    expect(error.kind).toBe('error');
    expect(error.status).toBe(status);
    expect(server.requests).toHaveLength(3);
    expect(backoffs).toEqual([1, 2]);
  });

  it('succeeds when a retry gets through', async () => {
    const server = await scripted('GET', TYPE_PATH, [envelope(503, 'busy'), { json: nodeType }]);
    const { http } = client(server.url);
    expect((await http.call(getType)).body).toEqual(nodeType);
    expect(server.requests).toHaveLength(2);
  });

  it('retries a safe call when the connection is reset', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ destroy: true }, { json: nodeType }]);
    const { http } = client(server.url);
    expect((await http.call(getType)).body).toEqual(nodeType);
    expect(server.requests).toHaveLength(2);
  });

  it('fails with <service>_unavailable after the last reset', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ destroy: true }]);
    const { http } = client(server.url);
    const error = await failure(http.call(getType));
    expect(error.code).toBe('node_registry_unavailable');
    expect(typeof error.details.cause).toBe('string');
    expect(server.requests).toHaveLength(3);
  });

  it.each([
    ['a 503', envelope(503, 'busy'), 'pdp_error'],
    ['a reset connection', { destroy: true } as Reply, 'pdp_unavailable'],
  ])('never retries an unsafe call after %s', async (_name, reply, code) => {
    const server = await scripted('POST', '/v1/policy:decide', [reply, { json: { decision: 'allow' } }]);
    const { http, backoffs } = client(server.url, { service: 'pdp' });
    expect((await failure(http.call(decide))).code).toBe(code);
    expect(server.requests).toHaveLength(1);
    expect(backoffs).toEqual([]);
  });

  it.each([400, 404, 409, 429, 500])('does not retry a safe call that got %i', async (status) => {
    const server = await scripted('GET', TYPE_PATH, [envelope(status, 'nope')]);
    const { http } = client(server.url);
    expect((await failure(http.call(getType))).status).toBe(status);
    expect(server.requests).toHaveLength(1);
  });

  it('retries refused connections of a safe call, then fails with <service>_unavailable', async () => {
    const url = await closedPortUrl();
    const { http, backoffs } = client(url);
    const error = await failure(http.call(getType));
    expect(error.code).toBe('node_registry_unavailable');
    expect(error.details).toEqual({ cause: 'ECONNREFUSED' });
    expect(backoffs).toEqual([1, 2]);
  });

  it('jitteredBackoff stays within its capped exponential window', () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const cap = Math.min(2000, 100 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const delay = jitteredBackoff(attempt);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(cap);
      }
    }
  });
});

describe('error mapping', () => {
  it('maps a non-2xx ErrorEnvelope to <service>_error with the downstream code and message', async () => {
    const server = await scripted('POST', '/v1/policy:decide', [
      envelope(409, 'conflict', 'already decided'),
    ]);
    const { http } = client(server.url, { service: 'pdp' });
    const error = await failure(http.call(decide));
    expect(error).toMatchObject({ code: 'pdp_error', service: 'pdp', kind: 'error', status: 409 });
    expect(error.details).toEqual({
      status: 409,
      downstream_code: 'conflict',
      downstream_message: 'already decided',
    });
    expect(error.message).toBe('the PDP answered 409');
  });

  it('keeps only the status for a non-envelope error body, and cuts long downstream messages', async () => {
    const long = 'x'.repeat(2000);
    const server = await scripted('GET', TYPE_PATH, [
      { status: 500, text: '<html>Internal Server Error</html>' },
      envelope(400, 'bad', long),
    ]);
    const { http } = client(server.url);
    expect((await failure(http.call(getType))).details).toEqual({ status: 500 });
    const cut = await failure(http.call(getType));
    expect(cut.details.downstream_message).toBe('x'.repeat(500));
  });

  it('answers an accepted status (e.g. 404 from a registry) with no body instead of failing', async () => {
    const server = await scripted('GET', TYPE_PATH, [envelope(404, 'node_type_not_found')]);
    const { http } = client(server.url);
    expect(await http.call({ ...getType, acceptStatuses: [404] })).toEqual({ status: 404, body: undefined });
    expect(server.requests).toHaveLength(1);
  });

  it('fails with <service>_timeout when the peer does not answer in time, without retrying', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ hang: true }]);
    const { http } = client(server.url, { timeoutMs: 60_000 });
    const error = await failure(http.call({ ...getType, timeoutMs: 50 }));
    expect(error.code).toBe('node_registry_timeout');
    expect(error.details).toEqual({ timeout_ms: 50 });
    expect(server.requests).toHaveLength(1);
    expect(await server.requests[0]!.settled).toBe('closed');
  });

  it("rejects with the caller's abort reason (not a ServiceError) when the caller aborts", async () => {
    const server = await scripted('GET', TYPE_PATH, [{ hang: true }]);
    const { http } = client(server.url);
    const controller = new AbortController();
    const call = http.call({ ...getType, signal: controller.signal });
    await server.waitFor(1);
    const reason = new Error('canceled by the coordinator');
    controller.abort(reason);
    await expect(call).rejects.toBe(reason);
    expect(await server.requests[0]!.settled).toBe('closed');
    expect(server.requests).toHaveLength(1);
  });

  it('never puts the peer address in messages or details', async () => {
    const refused = await closedPortUrl();
    const hanging = await scripted('GET', TYPE_PATH, [{ hang: true }]);
    const failing = await scripted('GET', TYPE_PATH, [envelope(502, 'gateway')]);
    const invalid = await scripted('GET', TYPE_PATH, [{ json: { kind: 'atomic' } }]);
    const errors = [
      await failure(client(refused).http.call(getType)),
      await failure(client(hanging.url).http.call({ ...getType, timeoutMs: 50 })),
      await failure(client(failing.url).http.call(getType)),
      await failure(client(invalid.url).http.call(getType)),
    ];
    expect(errors.map((e) => e.kind)).toEqual(['unavailable', 'timeout', 'error', 'invalid_response']);
    for (const [error, url] of errors.map(
      (e, i) => [e, [refused, hanging.url, failing.url, invalid.url][i]!] as const,
    )) {
      const text = `${error.message} ${JSON.stringify(error.details)}`;
      expect(text).not.toContain(new URL(url).host);
      expect(text).not.toContain('127.0.0.1');
    }
  });
});

describe('contract validation', () => {
  it('rejects an invalid request body with <service>_invalid_request without sending it', async () => {
    const server = await scripted('POST', '/v1/policy:decide', [{ json: { decision: 'allow' } }]);
    const { http } = client(server.url, { service: 'pdp' });
    const error = await failure(http.call({ ...decide, body: { run_id: 'r1', surprise: true } }));
    expect(error.code).toBe('pdp_invalid_request');
    expect(error.details.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ message: "must have required property 'action'" }),
        expect.objectContaining({ message: "must NOT have additional property 'surprise'" }),
      ]),
    );
    expect(server.requests).toEqual([]);
  });

  it('sends a valid body as JSON with the configured headers', async () => {
    const server = await scripted('POST', '/v1/policy:decide', [{ json: { decision: 'allow' } }]);
    const { http } = client(server.url, {
      service: 'pdp',
      headers: async () => ({ authorization: 'Bearer t0k3n' }),
    });
    expect(await http.call(decide)).toEqual({ status: 200, body: { decision: 'allow' } });
    const [request] = server.requests;
    expect(request!.body).toEqual(policyRequest);
    expect(request!.headers).toMatchObject({
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: 'Bearer t0k3n',
    });
  });

  it('sends no content-type and no body on a call without one', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ json: nodeType }]);
    await client(server.url).http.call(getType);
    expect(server.requests[0]!.headers['content-type']).toBeUndefined();
    expect(server.requests[0]!.text).toBe('');
  });

  it.each([
    ['a body that does not match the schema', { json: { node_type_id: 'atomic.echo', kind: 'robot' } }],
    ['a body that is not JSON', { text: 'OK' }],
    ['an empty body', { status: 200 }],
  ] as [string, Reply][])('fails with <service>_invalid_response on %s', async (_name, reply) => {
    const server = await scripted('GET', TYPE_PATH, [reply]);
    const error = await failure(client(server.url).http.call(getType));
    expect(error.code).toBe('node_registry_invalid_response');
    expect(server.requests).toHaveLength(1);
  });

  it('reports which fields of an invalid response are wrong', async () => {
    const server = await scripted('GET', TYPE_PATH, [
      { json: { node_type_id: 'atomic.echo', kind: 'robot' } },
    ]);
    const error = await failure(client(server.url).http.call(getType));
    expect(error.details.errors).toEqual(
      expect.arrayContaining([
        { path: '/', message: "must have required property 'version'" },
        expect.objectContaining({ path: '/kind' }),
      ]),
    );
  });

  it('returns no body for a 2xx call without a response schema', async () => {
    const server = await scripted('POST', '/v1/atomic-node-runs/n1:cancel', [{ status: 204 }]);
    const { http } = client(server.url, { service: 'atomic_executor' });
    expect(
      await http.call({
        operation: 'cancel',
        method: 'POST',
        path: '/v1/atomic-node-runs/n1:cancel',
        safeToRetry: true,
      }),
    ).toEqual({ status: 204, body: undefined });
  });

  it('tolerates nulls for absent fields and un-namespaced extension keys in answers', async () => {
    const server = await scripted('GET', TYPE_PATH, [
      { json: { ...nodeType, description: null, extensions: { plain: 1, 'acme.kept': 2 } } },
    ]);
    expect((await client(server.url).http.call(getType)).body).toEqual({
      ...nodeType,
      extensions: { 'acme.kept': 2 },
    });
  });

  // BUG: ContractValidators.tolerate (src/contract/validators.ts) is documented to drop only nulls
  // and un-namespaced extension keys ("nothing else", test/contract/tolerate.test.ts), but it drops
  // every property a closed schema does not define. A result with a misspelt `output` is then
  // accepted as a valid success and the outputs are silently lost, instead of failing as
  // `<service>_invalid_response`.
  it('still rejects an answer with a field outside the schema', async () => {
    const server = await scripted('POST', '/v1/atomic-node-runs:execute', [
      { json: { node_run_id: 'n1', state: 'succeeded', output: { answer: 42 } } },
    ]);
    const { http } = client(server.url, { service: 'atomic_executor' });
    const error = await failure(
      http.call({
        operation: 'execute',
        method: 'POST',
        path: '/v1/atomic-node-runs:execute',
        body: {
          node_run_id: 'n1',
          run_id: 'r1',
          node_type_ref: { node_type_id: 'atomic.echo', version: '1' },
          inputs: {},
        },
        requestSchema: 'AtomicExecuteRequest',
        responseSchema: 'AtomicExecuteResult',
        safeToRetry: false,
      }),
    );
    expect(error.code).toBe('atomic_executor_invalid_response');
  });
});

describe('ServiceError', () => {
  it('carries the service, the kind and a stable code', () => {
    const error = new ServiceError('composite_executor', 'timeout', 'late', { timeout_ms: 5 });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      name: 'ServiceError',
      code: 'composite_executor_timeout',
      service: 'composite_executor',
      kind: 'timeout',
      status: undefined,
      details: { timeout_ms: 5 },
      message: 'late',
    });
  });
});

describe('held answers', () => {
  it('waits for the peer as long as it holds its answer (within the timeout)', async () => {
    const gate = deferred<Reply>();
    const server = await fake();
    server.on('GET', TYPE_PATH, () => gate.promise);
    const call = client(server.url).http.call(getType);
    await server.waitFor(1);
    expect(server.inFlight).toBe(1);
    gate.resolve({ json: nodeType });
    expect((await call).body).toEqual(nodeType);
  });
});

describe('response size', () => {
  it('refuses to buffer an answer larger than maxResponseBytes', async () => {
    const server = await scripted('GET', TYPE_PATH, [
      { json: { ...nodeType, description: 'x'.repeat(5000) } },
    ]);
    const small = client(server.url, { maxResponseBytes: 1024 });
    const error = await failure(small.http.call(getType));
    expect(error.code).toBe('node_registry_invalid_response');
    expect(error.details).toEqual({ limit_bytes: 1024 });
    const roomy = client(server.url, { maxResponseBytes: 64 * 1024 });
    await expect(roomy.http.call(getType)).resolves.toMatchObject({ status: 200 });
  });
});

describe('observing calls', () => {
  it('reports every attempt with its operation, outcome, status and code, never the peer URL', async () => {
    const server = await scripted('GET', TYPE_PATH, [
      envelope(503, 'busy'),
      { destroy: true },
      { json: nodeType },
    ]);
    const records: CallRecord[] = [];
    const { http } = client(server.url, { onCall: (record) => records.push(record) });
    expect((await http.call(getType)).body).toEqual(nodeType);
    expect(records.map(({ durationMs: _, ...rest }) => rest)).toEqual([
      {
        service: 'node_registry',
        operation: 'get_node_type',
        outcome: 'error',
        status: 503,
        attempt: 1,
        code: 'node_registry_error',
      },
      {
        service: 'node_registry',
        operation: 'get_node_type',
        outcome: 'unavailable',
        status: undefined,
        attempt: 2,
        code: 'node_registry_unavailable',
      },
      {
        service: 'node_registry',
        operation: 'get_node_type',
        outcome: 'ok',
        status: 200,
        attempt: 3,
        code: undefined,
      },
    ]);
    for (const record of records) expect(record.durationMs).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(records)).not.toContain(server.url);
  });

  it('reports an accepted status as ok, and an observer that throws changes nothing', async () => {
    const server = await scripted('GET', TYPE_PATH, [
      { status: 404, json: { error: { code: 'x', message: 'y' } } },
    ]);
    const records: CallRecord[] = [];
    const { http } = client(server.url, {
      onCall: (record) => {
        records.push(record);
        throw new Error('observer broke');
      },
    });
    expect(await http.call({ ...getType, acceptStatuses: [404] })).toEqual({ status: 404, body: undefined });
    expect(records.map((r) => [r.outcome, r.status])).toEqual([['ok', 404]]);
  });

  it('sends the configured user-agent on every call', async () => {
    const server = await scripted('GET', TYPE_PATH, [{ json: nodeType }]);
    const { http } = client(server.url, { userAgent: 'arp-run-coordinator/9.9.9' });
    await http.call(getType);
    expect(server.requests[0]!.headers['user-agent']).toBe('arp-run-coordinator/9.9.9');
  });
});
