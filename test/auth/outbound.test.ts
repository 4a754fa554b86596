/**
 * Outbound client-credentials tokens: with ARP_AUTH_CLIENT_ID / _SECRET / _TOKEN_ENDPOINT the
 * coordinator asks a (fake, loopback) OAuth2 token endpoint for one token per downstream audience
 * and sends it as `Authorization: Bearer` on every call to the fake executors, registry and PDP;
 * tokens are cached until shortly before they expire, one request per audience at a time; a
 * failing token endpoint fails only the work that needed the token, with `token_request_failed`.
 * Expiry and renewal are tested on `ClientCredentialsTokens` directly, with an injected clock.
 */
import { Agent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientCredentialsTokens, TokenRequestError } from '../../src/auth/outbound.js';
import { type OutboundAuth, parseAuthSettings } from '../../src/auth/settings.js';
import { loadContract } from '../../src/contract/contract.js';
import {
  buildClients,
  defaultOrchestration,
  type OrchestrationOptions,
} from '../../src/coordinator/wiring.js';
import type { NodeType, PolicyDecision } from '../../src/gen/contract.js';
import {
  AE_EXECUTE,
  CE_BEGIN,
  cancelRun,
  ceCancelPath,
  completionError,
  getNodeRun,
  getRun,
  idle,
  PDP_DECIDE,
  runEvents,
  startRun,
  useDispatch,
} from '../dispatch/harness.js';
import { type TestApp, untilCommitted } from '../helpers/app.js';
import { type FakeService, replies } from '../helpers/executors.js';
import { startTokenEndpoint, type TokenEndpoint, type TokenResponder } from '../helpers/token-endpoint.js';

// Registered before the dispatch harness, so that (hooks run as a stack) it runs after the apps
// closed: no token request is left in flight when the token endpoints close.
let closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  const all = closers;
  closers = [];
  for (const close of all.reverse()) await close();
});

const h = useDispatch();

const CLIENT_ID = 'arp-run-coordinator';
const CLIENT_SECRET = 's3cr&t =/+%';

const DEFAULT_AUDIENCES = ['arp-atomic-executor', 'arp-composite-executor', 'arp-node-registry', 'arp-pdp'];

const plan = { node_type_id: 'composite.plan', version: '1.0.0' };
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const jarvisEcho = { node_type_id: 'jarvis.core.echo', version: '1.0.0' };
const allow: PolicyDecision = { decision: 'allow', reason_code: 'ok' };

interface Endpoint extends TokenEndpoint {
  /** `access_token` answered per audience, in order. */
  readonly tokens: Map<string, string[]>;
  readonly outbound: OutboundAuth;
}

/** A fake token endpoint that remembers which token it gave for which audience. */
async function tokenEndpoint(expiresIn?: number): Promise<Endpoint> {
  const te = await startTokenEndpoint({
    clients: { [CLIENT_ID]: CLIENT_SECRET },
    ...(expiresIn === undefined ? {} : { expiresIn }),
  });
  closers.push(() => te.close());
  const tokens = new Map<string, string[]>();
  let inner: TokenResponder | null = null;
  // Every answer, default or from a test's responder, is recorded when it carries a token.
  te.respondWith(async (req, token) => {
    const reply = inner ? await inner(req, token) : { json: token };
    const json = 'json' in reply ? (reply.json as { access_token?: unknown } | undefined) : undefined;
    if (typeof json?.access_token === 'string') {
      const key = req.audience ?? '';
      tokens.set(key, [...(tokens.get(key) ?? []), json.access_token]);
    }
    return reply;
  });
  return Object.assign(te, {
    respondWith(fn: TokenResponder | null) {
      inner = fn;
    },
    tokens,
    outbound: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, tokenEndpoint: te.url },
  });
}

function agent(): Agent {
  const created = new Agent();
  closers.push(() => created.destroy());
  return created;
}

const audiencesOf = (te: TokenEndpoint) => te.requests().map((r) => r.audience);
const authorizations = (fake: FakeService) => fake.requests.map((r) => r.headers.authorization);

async function echoExecutor(): Promise<FakeService> {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => {
    const body = r.body as { node_run_id: string; inputs: Record<string, unknown> };
    return replies.succeeded(body.node_run_id, body.inputs);
  });
  ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  return ae;
}

async function compositeExecutor(): Promise<FakeService> {
  const ce = await h.fake();
  ce.on('POST', CE_BEGIN, () => ({ json: { accepted: true } }));
  ce.on('POST', /^\/v1\/composite-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  return ce;
}

async function registry(known: NodeType[]): Promise<FakeService> {
  const fake = await h.fake();
  fake.on('GET', /^\/v1\/node-types\/[^/]+$/, (r) => {
    const id = decodeURIComponent(r.path.slice('/v1/node-types/'.length));
    const found = known.find((n) => n.node_type_id === id && n.version === r.query.get('version'));
    return found ? { json: found } : replies.envelope(404, 'node_type_not_found');
  });
  return fake;
}

async function pdp(): Promise<FakeService> {
  const fake = await h.fake();
  fake.on('POST', PDP_DECIDE, () => ({ json: allow }));
  return fake;
}

interface World {
  readonly ae: FakeService;
  readonly ce: FakeService;
  readonly nodes: FakeService;
  readonly policy: FakeService;
  readonly services: OrchestrationOptions['services'];
}

async function world(): Promise<World> {
  const ae = await echoExecutor();
  const ce = await compositeExecutor();
  const nodes = await registry([
    { ...plan, kind: 'composite' },
    { ...echo, kind: 'atomic' },
  ]);
  const policy = await pdp();
  return {
    ae,
    ce,
    nodes,
    policy,
    services: {
      atomicExecutor: ae.url,
      compositeExecutor: ce.url,
      nodeRegistry: nodes.url,
      pdp: policy.url,
    },
  };
}

/**
 * A composite root handed to the CE, an atomic child created under it (registry lookups and PDP
 * decisions for both), then a cancel of the Run (a cancel call to the CE): every kind of call.
 */
async function driveEveryCall(t: TestApp, w: World): Promise<void> {
  const run = await startRun(t, { root_node_type_ref: plan });
  expect(run.state).toBe('running');
  await idle(t);
  expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('running');
  const created = await t.request({
    method: 'POST',
    url: '/v1/node-runs',
    payload: {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: echo, inputs: { text: 'hi' } }],
    },
  });
  expect(created.statusCode, created.body).toBe(200);
  await idle(t);
  const childId = (created.json() as { node_runs: { node_run_id: string }[] }).node_runs[0]!.node_run_id;
  expect((await getNodeRun(t, childId)).state).toBe('succeeded');
  await cancelRun(t, run.run_id);
  await w.ce.waitFor(1, (r) => r.path === ceCancelPath(run.root_node_run_id));
  await w.ce.requests.at(-1)!.settled;
  // Every kind of call was made.
  expect(w.ae.received((r) => r.path === AE_EXECUTE)).toHaveLength(1);
  expect(w.ce.received((r) => r.path === CE_BEGIN)).toHaveLength(1);
  expect(w.nodes.requests.length).toBeGreaterThanOrEqual(2);
  expect(w.policy.requests).toHaveLength(3);
}

/** Every request of `fake` carried the one token the endpoint issued for `audience`. */
function expectBearerFor(te: Endpoint, fake: FakeService, audience: string): void {
  const issued = te.tokens.get(audience);
  expect(issued, `a token for ${audience}`).toHaveLength(1);
  expect(fake.requests.length).toBeGreaterThan(0);
  expect(authorizations(fake)).toEqual(fake.requests.map(() => `Bearer ${issued![0]}`));
}

describe('outbound calls with client credentials', () => {
  it('sends a Bearer token for the default audience of each service (from the ARP_AUTH_* settings)', async () => {
    const te = await tokenEndpoint();
    const problems: string[] = [];
    const auth = parseAuthSettings(
      {
        ARP_AUTH_CLIENT_ID: CLIENT_ID,
        ARP_AUTH_CLIENT_SECRET: CLIENT_SECRET,
        ARP_AUTH_TOKEN_ENDPOINT: te.url,
      },
      problems,
    );
    expect(problems).toEqual([]);
    expect(auth.outbound).toEqual(te.outbound);
    expect(auth.inbound.mode).toBe('disabled');
    const w = await world();
    const t = await h.app({ services: w.services, publicUrl: 'http://127.0.0.1:1' }, { options: { auth } });
    await driveEveryCall(t, w);

    expect([...audiencesOf(te)].sort()).toEqual(DEFAULT_AUDIENCES);
    expectBearerFor(te, w.ae, 'arp-atomic-executor');
    expectBearerFor(te, w.ce, 'arp-composite-executor');
    expectBearerFor(te, w.nodes, 'arp-node-registry');
    expectBearerFor(te, w.policy, 'arp-pdp');
    // The CE's cancel carried the same token as its begin.
    expect(w.ce.requests.map((r) => r.path)).toEqual([CE_BEGIN, ceCancelPath('node_run_1')]);
  });

  it('asks for the audiences configured in OrchestrationOptions.audiences', async () => {
    const te = await tokenEndpoint();
    const w = await world();
    const audiences = {
      atomicExecutor: 'urn:test:ae',
      compositeExecutor: 'urn:test:ce',
      nodeRegistry: 'urn:test:registry',
      pdp: 'urn:test:pdp',
      selection: 'urn:test:selection',
    };
    const t = await h.app(
      { services: w.services, publicUrl: 'http://127.0.0.1:1', audiences },
      { outboundAuth: te.outbound },
    );
    await driveEveryCall(t, w);
    expect([...audiencesOf(te)].sort()).toEqual(
      ['urn:test:ae', 'urn:test:ce', 'urn:test:pdp', 'urn:test:registry'].sort(),
    );
    expectBearerFor(te, w.ae, 'urn:test:ae');
    expectBearerFor(te, w.ce, 'urn:test:ce');
    expectBearerFor(te, w.nodes, 'urn:test:registry');
    expectBearerFor(te, w.policy, 'urn:test:pdp');
  });

  it.each([
    ['the default selection audience', defaultOrchestration.audiences, 'arp-selection'],
    ['a custom selection audience', { ...defaultOrchestration.audiences, selection: 'urn:sel' }, 'urn:sel'],
  ] as const)('sends %s to the Selection service', async (_name, audiences, expected) => {
    const te = await tokenEndpoint();
    const selection = await h.fake();
    const set = {
      candidate_set_id: 'cs1',
      subtask_id: 's1',
      candidates: [{ node_type_ref: echo, score: 0.9 }],
    };
    selection.on('POST', '/v1/candidate-sets', () => ({ json: set }));
    const clients = buildClients(
      { ...defaultOrchestration, services: { selection: selection.url }, audiences },
      loadContract(),
      { outboundAuth: te.outbound, httpDispatcher: agent(), retry: { retries: 0, backoff: () => 0 } },
    );
    const request = { subtask_spec: { subtask_id: 's1', goal: 'echo' } };
    expect(await clients.selection!.candidateSet(request)).toEqual(set);
    expect(await clients.selection!.candidateSet(request)).toEqual(set);
    expect(audiencesOf(te)).toEqual([expected]);
    expectBearerFor(te, selection, expected);
  });

  it('posts a client-credentials form: grant_type, client_id, client_secret and audience', async () => {
    const te = await tokenEndpoint();
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { outboundAuth: te.outbound });
    await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    const [request] = te.requests();
    expect(te.requests()).toHaveLength(1);
    expect(request).toMatchObject({
      method: 'POST',
      path: new URL(te.url).pathname,
      grant_type: 'client_credentials',
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      audience: 'arp-atomic-executor',
      credentials: 'body',
    });
    expect(request!.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(request!.authorization).toBeUndefined();
    expect(Object.fromEntries(request!.form)).toEqual({
      grant_type: 'client_credentials',
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      audience: 'arp-atomic-executor',
    });
    expect(ae.requests[0]!.headers.authorization).toBe(`Bearer ${te.tokens.get('arp-atomic-executor')![0]}`);
  });

  it('sends no Authorization header at all without client credentials', async () => {
    const te = await tokenEndpoint();
    const w = await world();
    const t = await h.app({ services: w.services, publicUrl: 'http://127.0.0.1:1' });
    await driveEveryCall(t, w);
    for (const fake of [w.ae, w.ce, w.nodes, w.policy]) {
      expect(fake.requests.length).toBeGreaterThan(0);
      expect(authorizations(fake)).toEqual(fake.requests.map(() => undefined));
    }
    expect(te.requests()).toEqual([]);
  });
});

describe('token caching', () => {
  it('reuses one token per audience across Runs', async () => {
    const te = await tokenEndpoint();
    const ae = await echoExecutor();
    const policy = await pdp();
    const nodes = await registry([{ ...jarvisEcho, kind: 'atomic' }]);
    const t = await h.app(
      { services: { atomicExecutor: ae.url, pdp: policy.url, nodeRegistry: nodes.url } },
      { outboundAuth: te.outbound },
    );
    for (let i = 0; i < 2; i++) {
      const run = await startRun(t, { root_node_type_ref: jarvisEcho });
      await idle(t);
      expect((await getRun(t, run.run_id)).state).toBe('succeeded');
    }
    expect(ae.requests).toHaveLength(2);
    expect(policy.requests).toHaveLength(4);
    expect([...audiencesOf(te)].sort()).toEqual(['arp-atomic-executor', 'arp-node-registry', 'arp-pdp']);
    expectBearerFor(te, ae, 'arp-atomic-executor');
    expectBearerFor(te, policy, 'arp-pdp');
    expectBearerFor(te, nodes, 'arp-node-registry');
  });

  it('makes one token request for several dispatches waiting on the same audience', async () => {
    const te = await tokenEndpoint();
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { outboundAuth: te.outbound });
    const release = te.hold();
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push(await startRun(t, { root_node_type_ref: echo }));
    await te.waitForRequests(1);
    // Every dispatch claims its NodeRun and then waits for the token.
    for (const run of runs) {
      await untilCommitted(
        t,
        run.run_id,
        async () => (await getNodeRun(t, run.root_node_run_id)).state === 'running',
      );
    }
    expect(ae.requests).toEqual([]);
    expect(te.requests()).toHaveLength(1);
    release();
    await idle(t);
    expect(te.requests()).toHaveLength(1);
    for (const run of runs) expect((await getRun(t, run.run_id)).state).toBe('succeeded');
    expect(ae.requests).toHaveLength(5);
    expectBearerFor(te, ae, 'arp-atomic-executor');
  });
});

describe('ClientCredentialsTokens', () => {
  const T0 = 1_000_000;

  function provider(te: Endpoint, options: { refreshMarginMs?: number } = {}) {
    let now = T0;
    const tokens = new ClientCredentialsTokens(te.outbound, {
      timeoutMs: 10_000,
      dispatcher: agent(),
      now: () => now,
      ...options,
    });
    return {
      tokens,
      at(ms: number) {
        now = T0 + ms;
      },
    };
  }

  it('shares one request among concurrent callers of the same audience', async () => {
    const te = await tokenEndpoint();
    const { tokens } = provider(te);
    const release = te.hold();
    const waiting = [tokens.token('a'), tokens.token('a'), tokens.token('a'), tokens.token('b')];
    await te.waitForRequests(2);
    expect(audiencesOf(te).sort()).toEqual(['a', 'b']);
    release();
    const got = await Promise.all(waiting);
    expect(got).toEqual([
      te.tokens.get('a')![0],
      te.tokens.get('a')![0],
      te.tokens.get('a')![0],
      te.tokens.get('b')![0],
    ]);
    expect(te.requests()).toHaveLength(2);
    expect(await tokens.token('a')).toBe(got[0]);
    expect(te.requests()).toHaveLength(2);
  });

  it('renews 30 s before expiry by default, never handing out an expired token', async () => {
    const te = await tokenEndpoint(300);
    const { tokens, at } = provider(te);
    const first = await tokens.token('aud');
    at(269_999);
    expect(await tokens.token('aud')).toBe(first);
    expect(te.requests()).toHaveLength(1);
    at(270_000);
    const second = await tokens.token('aud');
    expect(second).not.toBe(first);
    expect(te.requests()).toHaveLength(2);
    // The renewed token lives from its own issue time.
    at(270_000 + 269_999);
    expect(await tokens.token('aud')).toBe(second);
    expect(te.requests()).toHaveLength(2);
  });

  it('renews a short-lived token at half its lifetime (the margin is at most half of it)', async () => {
    const te = await tokenEndpoint(10);
    const { tokens, at } = provider(te);
    const first = await tokens.token('aud');
    at(4_999);
    expect(await tokens.token('aud')).toBe(first);
    at(5_000);
    const second = await tokens.token('aud');
    expect(second).not.toBe(first);
    expect(te.requests()).toHaveLength(2);
    // Well before the first token's expiry (10 s).
    at(9_999);
    expect(await tokens.token('aud')).toBe(second);
    expect(te.requests()).toHaveLength(2);
  });

  it('honours a custom renewal margin', async () => {
    const te = await tokenEndpoint(300);
    const { tokens, at } = provider(te, { refreshMarginMs: 1_000 });
    const first = await tokens.token('aud');
    at(298_999);
    expect(await tokens.token('aud')).toBe(first);
    at(299_000);
    expect(await tokens.token('aud')).not.toBe(first);
    expect(te.requests()).toHaveLength(2);
  });

  it('caps a large margin at half the lifetime', async () => {
    const te = await tokenEndpoint(60);
    const { tokens, at } = provider(te, { refreshMarginMs: 120_000 });
    const first = await tokens.token('aud');
    at(29_999);
    expect(await tokens.token('aud')).toBe(first);
    at(30_000);
    expect(await tokens.token('aud')).not.toBe(first);
    expect(te.requests()).toHaveLength(2);
  });

  it('assumes 60 s when the answer has no expires_in', async () => {
    const te = await tokenEndpoint();
    te.respondWith((_req, token) => ({ json: { access_token: token.access_token, token_type: 'Bearer' } }));
    const { tokens, at } = provider(te);
    const first = await tokens.token('aud');
    at(29_999);
    expect(await tokens.token('aud')).toBe(first);
    at(30_000);
    expect(await tokens.token('aud')).not.toBe(first);
  });

  it('shares one renewal among callers once the cached token is due', async () => {
    const te = await tokenEndpoint(300);
    const { tokens, at } = provider(te);
    await tokens.token('aud');
    at(280_000);
    const release = te.hold();
    const waiting = [tokens.token('aud'), tokens.token('aud'), tokens.token('aud')];
    await te.waitForRequests(2);
    release();
    const got = await Promise.all(waiting);
    expect(new Set(got).size).toBe(1);
    expect(te.requests()).toHaveLength(2);
  });

  it.each([
    ['answers 500', (te: TokenEndpoint) => te.fail(500), { status: 500 }],
    ['answers 401', (te: TokenEndpoint) => te.fail(401), { status: 401 }],
    ['closes the connection', (te: TokenEndpoint) => te.fail('close'), { cause: expect.any(String) }],
    [
      'answers without access_token',
      (te: TokenEndpoint) => te.respondWith(() => ({ json: { token_type: 'Bearer' } })),
      { status: 200, cause: 'no_access_token' },
    ],
    [
      'answers something that is not JSON',
      (te: TokenEndpoint) => te.respondWith(() => ({ text: 'hello' })),
      { status: 200, cause: 'invalid_json' },
    ],
  ] as const)(
    'rejects with token_request_failed when the endpoint %s, and does not cache the failure',
    async (_name, breakIt, details) => {
      const te = await tokenEndpoint();
      const { tokens } = provider(te);
      breakIt(te);
      const error = await tokens.token('aud').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TokenRequestError);
      const failure = error as TokenRequestError;
      expect(failure.code).toBe('token_request_failed');
      expect(failure.details).toEqual({ audience: 'aud', ...details });
      expect(failure.message).not.toContain(CLIENT_SECRET);
      expect(JSON.stringify(failure.details)).not.toContain(CLIENT_SECRET);
      // Recovered: the next call asks again and succeeds.
      te.fail(false);
      te.respondWith(null);
      const token = await tokens.token('aud');
      expect(token).toMatch(/^tok-aud-\d+$/);
      expect(te.requests()).toHaveLength(2);
    },
  );
});

describe('a failing token endpoint', () => {
  it.each([
    ['answers 500', 500 as const, { audience: 'arp-atomic-executor', status: 500 }],
    [
      'closes the connection',
      'close' as const,
      { audience: 'arp-atomic-executor', cause: expect.any(String) },
    ],
  ])(
    'fails the NodeRun with token_request_failed when it %s; the executor is never called',
    async (_name, mode, details) => {
      const te = await tokenEndpoint();
      const ae = await echoExecutor();
      const t = await h.app({ services: { atomicExecutor: ae.url } }, { outboundAuth: te.outbound });
      te.fail(mode);
      const run = await startRun(t, { root_node_type_ref: echo });
      expect(run.state).toBe('running');
      await idle(t);
      const root = await getNodeRun(t, run.root_node_run_id);
      expect(root.state).toBe('failed');
      const error = completionError(root)!;
      expect(error).toMatchObject({ code: 'token_request_failed', details });
      expect(JSON.stringify(error)).not.toContain(CLIENT_SECRET);
      expect(JSON.stringify(error)).not.toContain(new URL(te.url).host);
      expect(completionError(await getRun(t, run.run_id))!.code).toBe('token_request_failed');
      expect(ae.requests).toEqual([]);

      // The process keeps working, and the failure was not cached.
      te.fail(false);
      const later = await startRun(t, { root_node_type_ref: echo });
      await idle(t);
      expect((await getRun(t, later.run_id)).state).toBe('succeeded');
      expect(te.requests()).toHaveLength(2);
      expect(ae.requests).toHaveLength(1);
      expectBearerFor(te, ae, 'arp-atomic-executor');
    },
  );

  it('answers start_run at once while the token request is pending, then fails the NodeRun', async () => {
    const te = await tokenEndpoint();
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { outboundAuth: te.outbound });
    const release = te.hold();
    te.fail(500);
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('running');
    await te.waitForRequests(1);
    // The token request is held: other API calls answer meanwhile.
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('running');
    const second = await startRun(t, { root_node_type_ref: echo });
    expect(second.state).toBe('running');
    release();
    await idle(t);
    for (const id of [run.root_node_run_id, second.root_node_run_id]) {
      expect(completionError(await getNodeRun(t, id))!.code).toBe('token_request_failed');
    }
    expect(ae.requests).toEqual([]);
  });

  it('never executes a NodeRun canceled while its token request was pending', async () => {
    const te = await tokenEndpoint();
    const ae = await echoExecutor();
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { outboundAuth: te.outbound });
    const release = te.hold();
    const run = await startRun(t, { root_node_type_ref: echo });
    await te.waitForRequests(1);
    expect((await cancelRun(t, run.run_id)).state).toBe('canceled');
    release();
    await idle(t);
    // The cancel is told to the executor (with the token), the execution never is.
    const [cancel] = await ae.waitFor(
      1,
      (r) => r.path === `/v1/atomic-node-runs/${run.root_node_run_id}:cancel`,
    );
    expect(cancel!.headers.authorization).toBe(`Bearer ${te.tokens.get('arp-atomic-executor')![0]}`);
    expect(ae.received((r) => r.path === AE_EXECUTE)).toEqual([]);
    expect((await getNodeRun(t, run.root_node_run_id)).state).toBe('canceled');
    expect(te.requests()).toHaveLength(1);
  });

  it('fails a composite with token_request_failed before its executor is called, and drops its assignment', async () => {
    const te = await tokenEndpoint();
    const ce = await compositeExecutor();
    const t = await h.app(
      { services: { compositeExecutor: ce.url }, publicUrl: 'http://127.0.0.1:1' },
      { outboundAuth: te.outbound },
    );
    te.fail(503);
    const run = await startRun(t, { root_node_type_ref: plan });
    expect(run.state).toBe('running');
    await idle(t);
    const root = await getNodeRun(t, run.root_node_run_id);
    expect(root.state).toBe('failed');
    expect(completionError(root)).toMatchObject({
      code: 'token_request_failed',
      details: { audience: 'arp-composite-executor', status: 503 },
    });
    expect(ce.requests).toEqual([]);
  });

  it('denies with pdp_unavailable when the token for the PDP cannot be had', async () => {
    const te = await tokenEndpoint();
    te.respondWith((req, token) =>
      req.audience === 'arp-pdp' ? { status: 500, json: { error: 'server_error' } } : { json: token },
    );
    const ae = await echoExecutor();
    const policy = await pdp();
    const t = await h.app(
      { services: { atomicExecutor: ae.url, pdp: policy.url } },
      { outboundAuth: te.outbound },
    );
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: echo, input: {} },
    });
    expect(res.statusCode, res.body).toBe(200);
    const run = res.json() as { run_id: string; root_node_run_id: string; state: string };
    expect(run.state).toBe('failed');
    expect(completionError(run as never)).toMatchObject({
      code: 'policy_denied',
      details: { action: 'run.start', decision: 'deny', reason_code: 'pdp_unavailable' },
    });
    const events = await runEvents(t, run.run_id);
    const decided = events.find((e) => e.type === 'policy_decided');
    expect(decided!.data).toMatchObject({
      action: 'run.start',
      decision: 'deny',
      reason_code: 'pdp_unavailable',
    });
    expect(String(decided!.data?.message)).toContain('token_request_failed');
    await idle(t);
    expect(policy.requests).toEqual([]);
    expect(ae.requests).toEqual([]);
    expect(audiencesOf(te)).toEqual(['arp-pdp']);
  });

  it('falls back to the id prefix when the token for the registry cannot be had', async () => {
    const te = await tokenEndpoint();
    te.respondWith((req, token) =>
      req.audience === 'arp-node-registry' ? { destroy: true } : { json: token },
    );
    const ae = await echoExecutor();
    const nodes = await registry([{ ...echo, kind: 'atomic' }]);
    const t = await h.app(
      { services: { atomicExecutor: ae.url, nodeRegistry: nodes.url } },
      { outboundAuth: te.outbound },
    );
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect((await getRun(t, run.run_id)).state).toBe('succeeded');
    expect(nodes.requests).toEqual([]);
    expectBearerFor(te, ae, 'arp-atomic-executor');
  });
});
