/**
 * Hostile request bodies: JSON nested past every recursive walk, bytes that are not UTF-8 and
 * numbers that overflow to Infinity. Each is a 400 that commits nothing, and the deepest body the
 * service accepts is served back intact by GET and by the event stream.
 */
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH } from '../../src/contract/json-limits.js';
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
    const text = 'é€😀\u0000\u2028';
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
  // JSON can carry U+0000 and unpaired surrogates as escapes; they parse to strings the service
  // serves back (escaped again). Every store keeps them wherever a body can put them.
  const NUL = 'a\u0000b';
  const LONE = 'a\ud800b\udc00';
  const served = async (t: TestApp, url: string) => {
    const res = await t.request({ method: 'GET', url });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };

  type StartBody = {
    input?: Record<string, unknown>;
    root_node_type_ref?: ReturnType<typeof ref>;
    run_context?: Record<string, unknown>;
  };
  it.each<[string, StartBody]>([
    ['U+0000 in a key of the input', { input: { [NUL]: 1 } }],
    ['an unpaired surrogate in the input', { input: { text: LONE } }],
    ['an unpaired surrogate in a key of the input', { input: { [LONE]: true } }],
    ['U+0000 in the node type id', { root_node_type_ref: ref(NUL) }],
    ['U+0000 in the tenant id', { run_context: { tenant_id: NUL } }],
  ])('start_run keeps %s', async (_where, body) => {
    const t = await newApp();
    const res = await post(
      t,
      '/v1/runs',
      JSON.stringify({ root_node_type_ref: ref('a'), input: {}, ...body }),
    );
    expect(res.statusCode, res.body).toBe(200);
    const run = res.json();
    const root = await served(t, `/v1/node-runs/${run.root_node_run_id}`);
    expect(root.inputs).toEqual(body.input ?? {});
    expect(root.node_type_ref).toEqual(body.root_node_type_ref ?? ref('a'));
    expect((await served(t, `/v1/runs/${run.run_id}`)).run_context).toEqual(body.run_context);
  });

  const writes = {
    /** A child NodeRun's inputs, read back by GET. */
    async 'NodeRun creation'(t: TestApp, text: string) {
      const run = await startRun(t);
      const res = await post(
        t,
        '/v1/node-runs',
        JSON.stringify({
          run_id: run.run_id,
          parent_node_run_id: run.root_node_run_id,
          node_runs: [{ node_type_ref: ref('atomic.a'), inputs: { [text]: text } }],
        }),
      );
      expect(res.statusCode, res.body).toBe(200);
      return (await served(t, `/v1/node-runs/${res.json().node_runs[0].node_run_id}`)).inputs;
    },
    /** An evaluation's details, read back from the event stream. */
    async 'an evaluation'(t: TestApp, text: string) {
      const run = await startRun(t);
      const evaluation = { evaluation_result: { status: 'success', details: { [text]: text } } };
      const url = `/v1/node-runs/${run.root_node_run_id}:evaluation`;
      const res = await post(t, url, JSON.stringify(evaluation));
      expect(res.statusCode, res.body).toBe(204);
      const events = parseEvents(await eventLines(t, run.run_id));
      return events.find((event) => event.type === 'node_evaluated')?.data?.details;
    },
    /** A completion's outputs, read back by GET. */
    async 'a completion'(t: TestApp, text: string) {
      const run = await startRun(t);
      const url = `/v1/node-runs/${run.root_node_run_id}:complete`;
      const res = await post(t, url, JSON.stringify({ state: 'succeeded', outputs: { [text]: text } }));
      expect(res.statusCode, res.body).toBe(204);
      return (await served(t, `/v1/node-runs/${run.root_node_run_id}`)).outputs;
    },
  };
  const cases = Object.keys(writes).flatMap((write) => [
    [write, 'U+0000', NUL],
    [write, 'an unpaired surrogate', LONE],
  ]) as [keyof typeof writes, string, string][];

  it.each(cases)('%s keeps %s, in keys and values', async (write, _what, text) => {
    const t = await newApp();
    expect(await writes[write](t, text)).toEqual({ [text]: text });
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
