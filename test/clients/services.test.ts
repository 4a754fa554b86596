/**
 * The per-service clients on top of `ServiceClient`, against loopback fake servers: the Node
 * Registry cache (answers and 404s cached, failures not), the PDP, and the executors' calls with
 * their retry rules (execute and begin never repeated, cancels retried, a 404 cancel accepted).
 */
import { describe, expect, it } from 'vitest';
import { AtomicExecutorClient } from '../../src/clients/atomic-executor.js';
import { CompositeExecutorClient } from '../../src/clients/composite-executor.js';
import { ServiceClient, ServiceError, type ServiceName } from '../../src/clients/http.js';
import { NodeRegistryClient } from '../../src/clients/node-registry.js';
import { PdpClient } from '../../src/clients/pdp.js';
import { SelectionClient } from '../../src/clients/selection.js';
import type { CompositeBeginRequest, NodeType } from '../../src/gen/contract.js';
import { closedPortUrl, type FakeService, Gates, type Reply, useFakes } from '../helpers/executors.js';
import { contractValidators } from '../helpers/ndjson.js';

const { fake, agent } = useFakes();

function http(service: ServiceName, baseUrl: string, retries = 2) {
  return new ServiceClient({
    service,
    baseUrl,
    timeoutMs: 10_000,
    validators: contractValidators(),
    dispatcher: agent(),
    retry: { retries, backoff: () => 0 },
  });
}

async function rejection(promise: Promise<unknown>): Promise<ServiceError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ServiceError);
  return error as ServiceError;
}

const echoType: NodeType = { node_type_id: 'jarvis.core.echo', version: '1.0.0', kind: 'atomic' };
const echoRef = { node_type_id: echoType.node_type_id, version: echoType.version };

describe('NodeRegistryClient', () => {
  /** A registry answering from `known`, 404 otherwise; `override` replaces the answer when given. */
  async function registryServer(known: NodeType[], override?: (index: number) => Reply | undefined) {
    const server = await fake();
    server.on('GET', /^\/v1\/node-types\//, (r) => {
      const replaced = override?.(r.index);
      if (replaced) return replaced;
      const id = decodeURIComponent(r.path.slice('/v1/node-types/'.length));
      const found = known.find((n) => n.node_type_id === id && n.version === r.query.get('version'));
      return found
        ? { json: found }
        : { status: 404, json: { error: { code: 'node_type_not_found', message: 'unknown' } } };
    });
    return server;
  }

  function registry(server: FakeService | string, options: { ttl?: number; size?: number } = {}) {
    let now = 0;
    const client = new NodeRegistryClient(
      http('node_registry', typeof server === 'string' ? server : server.url, 0),
      {
        cacheTtlMs: options.ttl ?? 1000,
        ...(options.size === undefined ? {} : { cacheSize: options.size }),
        now: () => now,
      },
    );
    return {
      client,
      advance: (ms: number) => {
        now += ms;
      },
    };
  }

  it('asks GET /v1/node-types/{id}?version= and caches the answer', async () => {
    const server = await registryServer([echoType]);
    const { client } = registry(server);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /v1/node-types/jarvis.core.echo?version=1.0.0',
    ]);
  });

  it('encodes the id and the version', async () => {
    const odd = { node_type_id: 'team/a b', version: '1.0.0+build 7' };
    const server = await registryServer([{ ...odd, kind: 'composite' }]);
    const { client } = registry(server);
    expect((await client.getNodeType(odd))?.kind).toBe('composite');
    expect(server.requests[0]!.url).toBe('/v1/node-types/team%2Fa%20b?version=1.0.0%2Bbuild+7');
  });

  it('caches a 404 as "unknown"', async () => {
    const server = await registryServer([]);
    const { client } = registry(server);
    expect(await client.getNodeType(echoRef)).toBeUndefined();
    expect(await client.getNodeType(echoRef)).toBeUndefined();
    expect(server.requests).toHaveLength(1);
  });

  it('shares one request between concurrent lookups of the same type', async () => {
    const server = await registryServer([echoType]);
    const { client } = registry(server);
    const [a, b] = await Promise.all([client.getNodeType(echoRef), client.getNodeType(echoRef)]);
    expect(a).toEqual(echoType);
    expect(b).toEqual(echoType);
    expect(server.requests).toHaveLength(1);
  });

  it('keeps versions apart', async () => {
    const server = await registryServer([echoType, { ...echoType, version: '2.0.0', kind: 'composite' }]);
    const { client } = registry(server);
    expect((await client.getNodeType(echoRef))?.kind).toBe('atomic');
    expect((await client.getNodeType({ ...echoRef, version: '2.0.0' }))?.kind).toBe('composite');
    expect(server.requests).toHaveLength(2);
  });

  it('does not cache failures: the next lookup asks again', async () => {
    const server = await registryServer([echoType], (index) =>
      index === 1 ? { status: 500, json: { error: { code: 'db_down', message: 'down' } } } : undefined,
    );
    const { client } = registry(server);
    expect((await rejection(client.getNodeType(echoRef))).code).toBe('node_registry_error');
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    expect(server.requests).toHaveLength(2);
  });

  it('asks again once an answer is older than the TTL', async () => {
    const server = await registryServer([echoType]);
    const { client, advance } = registry(server, { ttl: 1000 });
    await client.getNodeType(echoRef);
    advance(999);
    await client.getNodeType(echoRef);
    expect(server.requests).toHaveLength(1);
    advance(1);
    await client.getNodeType(echoRef);
    expect(server.requests).toHaveLength(2);
  });

  it('keeps at most cacheSize answers', async () => {
    const server = await registryServer([echoType, { ...echoType, version: '2.0.0' }]);
    const { client } = registry(server, { size: 1 });
    await client.getNodeType(echoRef);
    await client.getNodeType({ ...echoRef, version: '2.0.0' });
    await client.getNodeType(echoRef);
    expect(server.requests).toHaveLength(3);
  });

  it('does not let an older failed lookup evict a newer cached answer', async () => {
    const held = new Gates<Reply>();
    const server = await fake();
    server.on('GET', /^\/v1\/node-types\//, (r) => (r.index === 1 ? held.wait('first') : { json: echoType }));
    const { client, advance } = registry(server, { ttl: 1000 });
    const stale = client.getNodeType(echoRef);
    await server.waitFor(1);
    advance(1000);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    held.release('first', { status: 500, json: { error: { code: 'db_down', message: 'down' } } });
    await rejection(stale);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
    expect(server.requests).toHaveLength(2);
  });

  it('peek: pending (and a lookup starts) until the registry answered, then found or unknown', async () => {
    const server = await registryServer([echoType]);
    const { client } = registry(server);
    const unknownRef = { node_type_id: 'nope', version: '1' };
    expect(client.peek(echoRef)).toEqual({ state: 'pending' });
    expect(client.peek(unknownRef)).toEqual({ state: 'pending' });
    await client.getNodeType(echoRef);
    await client.getNodeType(unknownRef);
    expect(client.peek(echoRef)).toEqual({ state: 'found', nodeType: echoType });
    expect(client.peek(unknownRef)).toEqual({ state: 'unknown' });
    expect(server.requests).toHaveLength(2);
  });

  it('accepts a NodeType with nulls for absent fields (as the reference registry sends)', async () => {
    const server = await registryServer([], () => ({
      json: { ...echoType, description: null, constraints: null, extensions: null },
    }));
    const { client } = registry(server);
    expect(await client.getNodeType(echoRef)).toEqual(echoType);
  });
});

describe('PdpClient', () => {
  it('posts the decision request and returns the decision', async () => {
    const server = await fake();
    server.on('POST', '/v1/policy:decide', () => ({ json: { decision: 'deny', reason_code: 'tenant' } }));
    const pdp = new PdpClient(http('pdp', server.url));
    const request = { action: 'node.run.execute', run_id: 'r1', node_run_id: 'n1' };
    expect(await pdp.decide(request)).toEqual({ decision: 'deny', reason_code: 'tenant' });
    expect(server.requests.map((r) => r.body)).toEqual([request]);
  });

  it('fails with pdp_unavailable when nothing listens', async () => {
    const url = await closedPortUrl();
    const pdp = new PdpClient(http('pdp', url));
    const error = await rejection(pdp.decide({ action: 'run.start' }));
    expect(error.code).toBe('pdp_unavailable');
    expect(error.message).not.toContain(new URL(url).host);
  });

  it('retries a 503 (a decision is safe to repeat)', async () => {
    const server = await fake();
    server.on('POST', '/v1/policy:decide', (r) =>
      r.index === 1
        ? { status: 503, json: { error: { code: 'busy', message: 'busy' } } }
        : { json: { decision: 'allow' } },
    );
    const pdp = new PdpClient(http('pdp', server.url));
    expect(await pdp.decide({ action: 'run.start' })).toEqual({ decision: 'allow' });
    expect(server.requests).toHaveLength(2);
  });
});

describe('AtomicExecutorClient', () => {
  const request = {
    node_run_id: 'n1',
    run_id: 'r1',
    node_type_ref: { node_type_id: 'atomic.echo', version: '1' },
    inputs: {},
  };

  it('never repeats execute, even on a 503 with retries configured', async () => {
    const server = await fake();
    server.on('POST', '/v1/atomic-node-runs:execute', () => ({
      status: 503,
      json: { error: { code: 'busy', message: 'busy' } },
    }));
    const ae = new AtomicExecutorClient(http('atomic_executor', server.url, 3));
    expect((await rejection(ae.execute(request, { timeoutMs: 5000 }))).code).toBe('atomic_executor_error');
    expect(server.requests).toHaveLength(1);
  });

  it('uses the per-call execute timeout', async () => {
    const server = await fake();
    server.on('POST', '/v1/atomic-node-runs:execute', () => ({ hang: true }));
    const ae = new AtomicExecutorClient(http('atomic_executor', server.url));
    const error = await rejection(ae.execute(request, { timeoutMs: 50 }));
    expect(error).toMatchObject({ code: 'atomic_executor_timeout', details: { timeout_ms: 50 } });
  });

  it('rejects an invalid request without sending it', async () => {
    const server = await fake();
    const ae = new AtomicExecutorClient(http('atomic_executor', server.url));
    const invalid = { ...request, inputs: 'text' } as unknown as typeof request;
    expect((await rejection(ae.execute(invalid, { timeoutMs: 5000 }))).code).toBe(
      'atomic_executor_invalid_request',
    );
    expect(server.requests).toEqual([]);
  });

  it('retries cancel (idempotent), encodes the id, and accepts a 404', async () => {
    const server = await fake();
    server.on('POST', /:cancel$/, (r) =>
      r.index === 1
        ? { status: 502, json: { error: { code: 'gateway', message: 'x' } } }
        : { status: 404, json: { error: { code: 'not_found', message: 'gone' } } },
    );
    const ae = new AtomicExecutorClient(http('atomic_executor', server.url));
    await ae.cancel('node run/1');
    expect(server.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /v1/atomic-node-runs/node%20run%2F1:cancel',
      'POST /v1/atomic-node-runs/node%20run%2F1:cancel',
    ]);
  });
});

describe('CompositeExecutorClient', () => {
  const begin: CompositeBeginRequest = {
    node_run_id: 'n1',
    run_id: 'r1',
    node_type_ref: { node_type_id: 'composite.plan', version: '1' },
    inputs: {},
    coordinator_endpoint: 'http://127.0.0.1:8081',
    assignment_token: 'tok',
  };

  it('begins and returns the executor answer; begin is never repeated', async () => {
    const server = await fake();
    server.on('POST', '/v1/composite-node-runs:begin', (r) =>
      r.index === 1
        ? { status: 503, json: { error: { code: 'busy', message: 'busy' } } }
        : { json: { accepted: true } },
    );
    const ce = new CompositeExecutorClient(http('composite_executor', server.url, 3));
    expect((await rejection(ce.begin(begin))).code).toBe('composite_executor_error');
    expect(await ce.begin(begin)).toEqual({ accepted: true });
    expect(server.requests.map((r) => r.body)).toEqual([begin, begin]);
  });

  it('rejects a begin without coordinator_endpoint without sending it', async () => {
    const server = await fake();
    const ce = new CompositeExecutorClient(http('composite_executor', server.url));
    const { coordinator_endpoint: _omitted, ...incomplete } = begin;
    expect((await rejection(ce.begin(incomplete as CompositeBeginRequest))).code).toBe(
      'composite_executor_invalid_request',
    );
    expect(server.requests).toEqual([]);
  });

  it('cancels with POST /v1/composite-node-runs/{id}:cancel', async () => {
    const server = await fake();
    server.on('POST', '/v1/composite-node-runs/n1:cancel', () => ({ status: 204 }));
    await new CompositeExecutorClient(http('composite_executor', server.url)).cancel('n1');
    expect(server.requests.map((r) => r.path)).toEqual(['/v1/composite-node-runs/n1:cancel']);
  });
});

describe('SelectionClient', () => {
  it('posts a CandidateSetRequest and validates the CandidateSet', async () => {
    const server = await fake();
    const set = {
      candidate_set_id: 'cs1',
      subtask_id: 's1',
      candidates: [{ node_type_ref: { node_type_id: 'atomic.echo', version: '1' }, score: 0.9 }],
    };
    server.on('POST', '/v1/candidate-sets', () => ({ json: set }));
    const selection = new SelectionClient(http('selection', server.url));
    const request = { subtask_spec: { subtask_id: 's1', goal: 'echo' } };
    expect(await selection.candidateSet(request)).toEqual(set);
    expect(server.requests[0]!.body).toEqual(request);
  });
});
