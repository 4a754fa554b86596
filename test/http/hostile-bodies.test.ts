/**
 * Hostile request bodies: JSON nested past every recursive walk, bytes that are not UTF-8 and
 * numbers that overflow to Infinity. Each is a 400 that commits nothing, and the deepest body the
 * service accepts is served back intact by GET and by the event stream.
 */
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../src/contract/json-limits.js';
import { MemoryStore } from '../../src/store/memory.js';
import { ref, startRun, type TestApp, useApp } from '../helpers/app.js';
import { parseEvents } from '../helpers/ndjson.js';
import { depthOf, nestedJson } from '../helpers/nested.js';

const newApp = useApp();

const json = { 'content-type': 'application/json' };
const REF = JSON.stringify(ref('atomic.a'));
const ROOT_REF = JSON.stringify(ref('composite.root'));

/** Raw JSON bodies whose own nesting (the body object counted) is exactly `depth`. */
const bodies = {
  start: (depth: number) => `{"root_node_type_ref":${ROOT_REF},"input":${nestedJson(depth - 1)}}`,
  create: (runId: string, parentId: string, depth: number, key?: string) =>
    `{"run_id":"${runId}","parent_node_run_id":"${parentId}","node_runs":[{"node_type_ref":${REF},` +
    `${key ? `"idempotency_key":"${key}",` : ''}"inputs":${nestedJson(depth - 3)}}]}`,
  evaluation: (depth: number) =>
    `{"evaluation_result":{"status":"success","details":${nestedJson(depth - 2)}}}`,
  complete: (depth: number) => `{"state":"succeeded","outputs":${nestedJson(depth - 1)}}`,
};

async function post(t: TestApp, url: string, payload: string | Buffer) {
  return t.request({ method: 'POST', url, headers: json, payload });
}

async function eventLines(t: TestApp, runId: string): Promise<string[]> {
  const res = await t.request({ method: 'GET', url: `/v1/runs/${runId}/events` });
  expect(res.statusCode, res.body.slice(0, 200)).toBe(200);
  return res.body.split('\n').filter(Boolean);
}

function expectTooDeep(res: { statusCode: number; json(): unknown; body: string }) {
  expect(res.statusCode, res.body.slice(0, 200)).toBe(400);
  expect(res.json()).toMatchObject({
    error: { code: 'invalid_request', details: { max_depth: MAX_JSON_DEPTH } },
  });
}

/** The Run and its root are still served in full: GET and the whole event stream. */
async function expectServable(t: TestApp, run: { run_id: string; root_node_run_id: string }) {
  const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
  expect(root.statusCode).toBe(200);
  const lines = await eventLines(t, run.run_id);
  parseEvents(lines);
  return lines;
}

describe('deeply nested JSON', () => {
  it('rejects a start_run body nested 20,000 levels with 400 and creates no Run', async () => {
    const t = await newApp();
    const res = await post(t, '/v1/runs', bodies.start(20_000).replace('{', '{"run_id":"deep",'));
    expectTooDeep(res);
    expect((await t.request({ method: 'GET', url: '/v1/runs/deep' })).statusCode).toBe(404);
  });

  it.each([
    ['without', undefined],
    ['with', 'k1'],
  ])(
    'rejects a create_node_runs body nested 20,000 levels %s an idempotency key, committing nothing',
    async (_name, key) => {
      const t = await newApp();
      const run = await startRun(t);
      const before = await eventLines(t, run.run_id);
      const res = await post(
        t,
        '/v1/node-runs',
        bodies.create(run.run_id, run.root_node_run_id, 20_000, key),
      );
      expectTooDeep(res);
      expect(await expectServable(t, run)).toEqual(before);
    },
  );

  it('rejects an :evaluation whose details nest 5,000 levels, and the Run stays servable', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const before = await eventLines(t, run.run_id);
    expectTooDeep(
      await post(t, `/v1/node-runs/${run.root_node_run_id}:evaluation`, bodies.evaluation(5_000)),
    );
    expect(await expectServable(t, run)).toEqual(before);
  });

  it('rejects a :complete whose outputs nest 5,000 levels, and the NodeRun stays queued', async () => {
    const t = await newApp();
    const run = await startRun(t);
    expectTooDeep(await post(t, `/v1/node-runs/${run.root_node_run_id}:complete`, bodies.complete(5_000)));
    await expectServable(t, run);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
    expect(root.json().state).toBe('queued');
  });

  it('rejects a body one level deeper than the limit on every JSON route', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const over = MAX_JSON_DEPTH + 1;
    const root = run.root_node_run_id;
    expectTooDeep(await post(t, '/v1/runs', bodies.start(over)));
    expectTooDeep(await post(t, '/v1/node-runs', bodies.create(run.run_id, root, over)));
    expectTooDeep(await post(t, `/v1/node-runs/${root}:evaluation`, bodies.evaluation(over)));
    expectTooDeep(await post(t, `/v1/node-runs/${root}:complete`, bodies.complete(over)));
    expect(await eventLines(t, run.run_id)).toHaveLength(2);
  });

  it('counts only brackets outside strings', async () => {
    const t = await newApp();
    const brackets = '[{'.repeat(MAX_JSON_DEPTH * 4);
    const res = await post(
      t,
      '/v1/runs',
      `{"root_node_type_ref":${REF},"input":{"text":"${brackets}\\"[[","k\\\\":"]]"}}`,
    );
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs).toEqual({ text: `${brackets}"[[`, 'k\\': ']]' });
  });

  it('serves the deepest accepted bodies back intact through GET and the event stream', async () => {
    const t = await newApp();
    const max = MAX_JSON_DEPTH;
    const started = await post(t, '/v1/runs', bodies.start(max));
    expect(started.statusCode, started.body.slice(0, 200)).toBe(200);
    const run = started.json() as { run_id: string; root_node_run_id: string };
    const root = run.root_node_run_id;
    const deepest = (levels: number) => JSON.parse(nestedJson(levels));

    const created = await post(t, '/v1/node-runs', bodies.create(run.run_id, root, max));
    expect(created.statusCode, created.body.slice(0, 200)).toBe(200);
    const child = created.json().node_runs[0];
    expect(child.inputs).toEqual(deepest(max - 3));

    expect((await post(t, `/v1/node-runs/${root}:evaluation`, bodies.evaluation(max))).statusCode).toBe(204);
    expect(
      (await post(t, `/v1/node-runs/${child.node_run_id}:complete`, bodies.complete(max))).statusCode,
    ).toBe(204);

    const getRoot = await t.request({ method: 'GET', url: `/v1/node-runs/${root}` });
    expect(getRoot.statusCode).toBe(200);
    expect(getRoot.json().inputs).toEqual(deepest(max - 1));
    expect(getRoot.json().evaluation_result.details).toEqual(deepest(max - 2));
    const getChild = await t.request({ method: 'GET', url: `/v1/node-runs/${child.node_run_id}` });
    expect(getChild.statusCode).toBe(200);
    expect(getChild.json().inputs).toEqual(deepest(max - 3));
    expect(getChild.json().outputs).toEqual(deepest(max - 1));

    const events = parseEvents(await eventLines(t, run.run_id));
    const evaluated = events.find((event) => event.type === 'node_evaluated');
    expect(evaluated?.data?.details).toEqual(deepest(max - 2));
    expect(depthOf(evaluated)).toBeGreaterThan(max - 2);
    const subtree = await t.request({ method: 'GET', url: `/v1/node-runs/${root}/events` });
    expect(subtree.statusCode).toBe(200);
    expect(parseEvents(subtree.body.split('\n').filter(Boolean))).toEqual(
      events.filter((event) => event.node_run_id !== undefined),
    );
  });
});

describe('bytes that are not UTF-8', () => {
  const withByte = (runId: string, byte: number) =>
    Buffer.concat([
      Buffer.from(`{"run_id":"${runId}","root_node_type_ref":${REF},"input":{"text":"a`),
      Buffer.from([byte]),
      Buffer.from('"}}'),
    ]);

  it('is a 400, so two different bodies cannot collide as an identical retry', async () => {
    const t = await newApp();
    for (const byte of [0xff, 0xfe]) {
      const res = await post(t, '/v1/runs', withByte('bytes', byte));
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.code).toBe('invalid_request');
    }
    expect((await t.request({ method: 'GET', url: '/v1/runs/bytes' })).statusCode).toBe(404);
  });

  it.each([
    ['a truncated sequence', Buffer.from([0xe2, 0x82])],
    ['an overlong encoding', Buffer.from([0xc0, 0xaf])],
    ['an encoded surrogate', Buffer.from([0xed, 0xa0, 0x80])],
    ['a code point past U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ])('rejects %s, also in a key', async (_name, bytes) => {
    const t = await newApp();
    const inKey = Buffer.concat([
      Buffer.from(`{"root_node_type_ref":${REF},"input":{"`),
      bytes,
      Buffer.from('":1}}'),
    ]);
    const res = await post(t, '/v1/runs', inKey);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
  });

  it('keeps valid multi-byte text exactly as sent', async () => {
    const t = await newApp();
    const text = 'é€😀\u0001\u2028';
    const res = await post(
      t,
      '/v1/runs',
      Buffer.from(JSON.stringify({ root_node_type_ref: ref('a'), input: { text } })),
    );
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs.text).toBe(text);
  });
});

describe('escapes of characters a database may refuse to store', () => {
  // JSON can carry U+0000 and unpaired surrogates as escapes. Whether the service keeps such a
  // string (and serves it back, escaped again) or refuses the body (400 invalid_request), it must
  // answer the same on every store: the memory store is the reference.
  const NUL = 'a\u0000b';
  const LONE = 'a\ud800b\udc00';

  /** What a write answered and, when it succeeded, what the service then served of it. */
  type Outcome = { status: number; code?: string; served?: unknown };

  const served = async (t: TestApp, url: string) => {
    const res = await t.request({ method: 'GET', url });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  async function send(
    t: TestApp,
    url: string,
    body: unknown,
    read: (res: LightMyRequestResponse) => Promise<unknown>,
  ): Promise<Outcome> {
    const res = await post(t, url, JSON.stringify(body));
    if (res.statusCode >= 300) return { status: res.statusCode, code: res.json().error?.code };
    return { status: res.statusCode, served: await read(res) };
  }

  const startBody = (extra: Record<string, unknown>) => ({
    root_node_type_ref: ref('a'),
    input: {},
    ...extra,
  });
  /** Starts a Run; serves back the root's inputs and type and the Run's context. */
  const start = (t: TestApp, extra: Record<string, unknown>) =>
    send(t, '/v1/runs', startBody(extra), async (res) => {
      const run = res.json();
      const root = await served(t, `/v1/node-runs/${run.root_node_run_id}`);
      const { run_context } = await served(t, `/v1/runs/${run.run_id}`);
      return { input: root.inputs, root_node_type_ref: root.node_type_ref, run_context };
    });
  /** Creates a child with `inputs`; serves back its inputs. */
  const create = async (t: TestApp, inputs: unknown) => {
    const run = await startRun(t);
    const body = {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: ref('atomic.a'), inputs }],
    };
    return send(t, '/v1/node-runs', body, async (res) => {
      return (await served(t, `/v1/node-runs/${res.json().node_runs[0].node_run_id}`)).inputs;
    });
  };
  /** Reports an evaluation with `details`; serves them back from the event stream. */
  const evaluate = async (t: TestApp, details: unknown) => {
    const run = await startRun(t);
    const body = { evaluation_result: { status: 'success', details } };
    return send(t, `/v1/node-runs/${run.root_node_run_id}:evaluation`, body, async () => {
      const events = parseEvents(await eventLines(t, run.run_id));
      return events.find((event) => event.type === 'node_evaluated')?.data?.details;
    });
  };
  /** Completes the root with `outputs`; serves them back. */
  const complete = async (t: TestApp, outputs: unknown) => {
    const run = await startRun(t);
    const body = { state: 'succeeded', outputs };
    return send(t, `/v1/node-runs/${run.root_node_run_id}:complete`, body, async () => {
      return (await served(t, `/v1/node-runs/${run.root_node_run_id}`)).outputs;
    });
  };

  /** Each case: the write, and what it serves back when the service keeps the string. */
  const cases: [string, (t: TestApp) => Promise<Outcome>, Outcome][] = [];
  for (const [what, text] of [
    ['U+0000', NUL],
    ['an unpaired surrogate', LONE],
  ] as const) {
    const keyed = { [text]: text };
    const started = (extra: Record<string, unknown>) => ({
      input: {},
      root_node_type_ref: ref('a'),
      ...extra,
    });
    cases.push(
      [
        `start_run with ${what} in the input`,
        (t) => start(t, { input: keyed }),
        ok(200, started({ input: keyed })),
      ],
      [
        `start_run with ${what} in the node type id`,
        (t) => start(t, { root_node_type_ref: ref(text) }),
        ok(200, started({ root_node_type_ref: ref(text) })),
      ],
      [
        `start_run with ${what} in the tenant id`,
        (t) => start(t, { run_context: { tenant_id: text } }),
        ok(200, started({ run_context: { tenant_id: text } })),
      ],
      [`NodeRun creation with ${what} in the inputs`, (t) => create(t, keyed), ok(200, keyed)],
      [`an evaluation with ${what} in the details`, (t) => evaluate(t, keyed), ok(204, keyed)],
      [`a completion with ${what} in the outputs`, (t) => complete(t, keyed), ok(204, keyed)],
    );
  }
  function ok(status: number, served: unknown): Outcome {
    return { status, served };
  }

  it.each(cases)('%s answers as on the memory store, never with a 500', async (_name, write, kept) => {
    const reference = await write(await newApp({ store: new MemoryStore({ maxFinishedRuns: 10 }) }));
    expect([kept, { status: 400, code: 'invalid_request' }]).toContainEqual(reference);
    expect(await write(await newApp())).toEqual(reference);
  });
});

describe('numbers out of range', () => {
  it.each([
    ['1e309', '1e309'],
    ['-1e309', '-1e309'],
    ['1E400', '1E400'],
    ['0.5e309', '0.5e309'],
    ['a 310-digit integer', `1${'0'.repeat(309)}`],
    ['a 400-digit negative decimal', `-${'9'.repeat(400)}.5`],
  ])('rejects %s instead of storing null', async (_name, number) => {
    const t = await newApp();
    const res = await post(
      t,
      '/v1/runs',
      `{"run_id":"num","root_node_type_ref":${REF},"input":{"list":[1,${number}]}}`,
    );
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
    expect((await t.request({ method: 'GET', url: '/v1/runs/num' })).statusCode).toBe(404);
  });

  it('rejects an overflowing number in a :complete and leaves the NodeRun queued', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await post(
      t,
      `/v1/node-runs/${run.root_node_run_id}:complete`,
      '{"state":"succeeded","outputs":{"n":1e999}}',
    );
    expect(res.statusCode).toBe(400);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
    expect(root.json().state).toBe('queued');
  });

  it('serves numbers with exponents in about as many bytes as they were sent', async () => {
    // 1e308 written out in full is 309 digits: a body of such numbers must not come back 50 times
    // larger from every GET.
    const t = await newApp();
    const list = Array.from({ length: 2_000 }, (_, i) => (i % 2 === 0 ? '1e308' : '-1e-300'));
    const body = `{"root_node_type_ref":${REF},"input":{"list":[${list.join(',')}]}}`;
    const res = await post(t, '/v1/runs', body);
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs.list).toEqual(list.map(Number));
    expect(root.body.length).toBeLessThan(2 * body.length);
  });

  it('keeps the largest and smallest finite numbers as sent', async () => {
    const t = await newApp();
    const res = await post(
      t,
      '/v1/runs',
      `{"root_node_type_ref":${REF},"input":{"max":1.7976931348623157e308,"min":-1.7976931348623157E+308,"tiny":5e-324,"big":${'9'.repeat(300)}}}`,
    );
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs).toEqual({
      max: Number.MAX_VALUE,
      min: -Number.MAX_VALUE,
      tiny: 5e-324,
      big: Number('9'.repeat(300)),
    });
  });
});

describe('the NUL character', () => {
  it.each([
    ['in a string', `{"run_id":"nul","root_node_type_ref":${REF},"input":{"s":"a\\u0000b"}}`],
    ['in a key', `{"run_id":"nul","root_node_type_ref":${REF},"input":{"a\\u0000":1}}`],
    ['after an escaped quote', `{"run_id":"nul","root_node_type_ref":${REF},"input":{"s":"\\"\\u0000"}}`],
  ])('is refused %s (PostgreSQL cannot store it), and nothing is created', async (_name, body) => {
    const t = await newApp();
    const res = await post(t, '/v1/runs', body);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'invalid_request', details: { character: 'U+0000' } });
    expect((await t.request({ method: 'GET', url: '/v1/runs/nul' })).statusCode).toBe(404);
  });

  it('is not confused with an escaped backslash followed by "u0000", which is kept as sent', async () => {
    const t = await newApp();
    const res = await post(t, '/v1/runs', `{"root_node_type_ref":${REF},"input":{"s":"\\\\u0000"}}`);
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs).toEqual({ s: '\\u0000' });
  });
});

describe('unpaired surrogates', () => {
  it.each([
    ['a lone high surrogate', '"\\ud800"'],
    ['a lone low surrogate', '"x\\udc00"'],
    ['a high surrogate followed by a plain character', '"\\uD83Dx"'],
    ['a lone surrogate in a key', '{"\\ud800":1}'],
  ])(
    '%s is refused (it is not Unicode text, and two of them would read as one key)',
    async (_name, value) => {
      const t = await newApp();
      const res = await post(
        t,
        '/v1/runs',
        `{"run_id":"sur","root_node_type_ref":${REF},"input":{"v":${value}}}`,
      );
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error).toMatchObject({
        code: 'invalid_request',
        details: { character: 'unpaired surrogate' },
      });
      expect((await t.request({ method: 'GET', url: '/v1/runs/sur' })).statusCode).toBe(404);
    },
  );

  it('a pair written as two escapes, and an escaped backslash before "ud800", are kept as sent', async () => {
    const t = await newApp();
    const res = await post(
      t,
      '/v1/runs',
      `{"root_node_type_ref":${REF},"input":{"pair":"\\ud83d\\ude00","text":"\\\\ud800"}}`,
    );
    expect(res.statusCode, res.body).toBe(200);
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${res.json().root_node_run_id}` });
    expect(root.json().inputs).toEqual({ pair: '😀', text: '\\ud800' });
  });
});
