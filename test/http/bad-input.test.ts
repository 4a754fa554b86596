/** Bad input of every kind gets an ErrorEnvelope with the right status and code, and changes nothing. */
import { describe, expect, it } from 'vitest';
import { ref, startRun, useApp } from '../helpers/app.js';

const newApp = useApp();

describe('bad input', () => {
  it.each([
    ['a missing required field', { input: {} }],
    ['an unknown top-level field', { root_node_type_ref: ref('a'), input: {}, colour: 'red' }],
    ['a wrong type (no coercion)', { root_node_type_ref: { node_type_id: 'a', version: 1 }, input: {} }],
    [
      'a non-namespaced extension key',
      { root_node_type_ref: ref('a'), input: {}, extensions: { trace: 'x' } },
    ],
    [
      'a bad enum in constraints',
      { root_node_type_ref: ref('a'), input: {}, constraints: { gates: { side_effect_class: 'delete' } } },
    ],
    [
      'a negative limit',
      { root_node_type_ref: ref('a'), input: {}, constraints: { structural: { max_depth: -1 } } },
    ],
    ['a JSON array', []],
    ['a JSON string', 'invalid'],
  ])('POST /v1/runs with %s is 400 invalid_request listing the errors', async (_name, payload) => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    });
    expect(res.statusCode).toBe(400);
    const error = res.json().error;
    expect(error.code).toBe('invalid_request');
    expect(Array.isArray(error.details.errors)).toBe(true);
    expect(error.details.errors.length).toBeGreaterThan(0);
    for (const item of error.details.errors)
      expect(item).toEqual({ path: expect.any(String), message: expect.any(String) });
    expect(t.app.coordinator.store).toBeDefined();
    const missing = await t.request({ method: 'GET', url: '/v1/runs/run_1' });
    expect(missing.statusCode).toBe(404);
  });

  it('names the unknown property', async () => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: ref('a'), input: {}, colour: 1 },
    });
    expect(res.json().error.details.errors).toContainEqual({
      path: 'body',
      message: "must NOT have additional property 'colour'",
    });
  });

  it.each([
    ['malformed JSON', 'application/json', '{"root_node_type_ref": ', 400, 'invalid_request'],
    [
      'a prototype-poisoning key',
      'application/json',
      '{"__proto__": {"x": 1}, "input": {}}',
      400,
      'invalid_request',
    ],
    ['text/plain', 'text/plain', 'hello', 415, 'unsupported_media_type'],
    ['form data', 'application/x-www-form-urlencoded', 'a=b', 415, 'unsupported_media_type'],
    ['an empty body', 'application/json', '', 400, 'invalid_request'],
  ])('POST /v1/runs with %s → %i %s', async (_name, type, payload, status, code) => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { 'content-type': type },
      payload,
    });
    expect(res.statusCode).toBe(status);
    expect(res.json().error.code).toBe(code);
  });

  it('413 for a body over the limit', async () => {
    const t = await newApp({ options: { bodyLimit: 2048 } });
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      payload: { root_node_type_ref: ref('a'), input: { blob: 'x'.repeat(4096) } },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('payload_too_large');
  });

  it('404 not_found for unknown routes and 405 with Allow for wrong methods', async () => {
    const t = await newApp();
    const unknown = await t.request({ method: 'GET', url: '/v2/anything' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('not_found');
    const wrong = await t.request({ method: 'DELETE', url: '/v1/runs/abc' });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.headers.allow).toBe('GET');
    expect(wrong.json().error.code).toBe('method_not_allowed');
    const put = await t.request({ method: 'PUT', url: '/v1/node-runs' });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('POST');
  });

  it('validates bodies before looking up ids (400 beats 404), as the reference does', async () => {
    const t = await newApp();
    for (const verb of ['complete', 'evaluation']) {
      const res = await t.request({ method: 'POST', url: `/v1/node-runs/nope:${verb}`, payload: {} });
      expect(res.statusCode).toBe(400);
    }
    const valid = await t.request({
      method: 'POST',
      url: '/v1/node-runs/nope:complete',
      payload: { state: 'succeeded' },
    });
    expect(valid.statusCode).toBe(404);
    expect(valid.json().error.code).toBe('node_run_not_found');
  });

  it.each([
    ['an empty node_runs array', { node_runs: [] }],
    ['a non-terminal completion state', null],
  ])('rejects %s', async (_name, override) => {
    const t = await newApp();
    const run = await startRun(t);
    const res =
      override === null
        ? await t.request({
            method: 'POST',
            url: `/v1/node-runs/${run.root_node_run_id}:complete`,
            payload: { state: 'running' },
          })
        : await t.request({
            method: 'POST',
            url: '/v1/node-runs',
            payload: { run_id: run.run_id, parent_node_run_id: run.root_node_run_id, ...override },
          });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.root_node_run_id}` });
    expect(root.json().state).toBe('queued');
  });

  it('400 for the same idempotency key twice in one request, creating nothing', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const spec = { node_type_ref: ref('atomic.a'), inputs: {}, idempotency_key: 'k' };
    const res = await t.request({
      method: 'POST',
      url: '/v1/node-runs',
      payload: { run_id: run.run_id, parent_node_run_id: run.root_node_run_id, node_runs: [spec, spec] },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
    const events = await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}/events` });
    expect(events.body.trim().split('\n')).toHaveLength(2);
  });

  it('answers malformed HTTP with an envelope over a real socket', async () => {
    const t = await newApp();
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as { port: number };
    const net = await import('node:net');
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('GARBAGE / HTTP/1.1\r\n\r\n'));
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk;
      });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4));
    expect(body.error.code).toBe('invalid_request');
  });
});

describe('messages that say what is wrong', () => {
  it('a "__proto__" key anywhere in a body is named as such, not called invalid JSON', async () => {
    const t = await newApp();
    const res = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { 'content-type': 'application/json' },
      payload: `{"root_node_type_ref":${JSON.stringify(ref('a'))},"input":{"__proto__":{"a":1}}}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
    expect(res.json().error.message).toMatch(/__proto__/);
  });

  it('an after_seq that is too long says how long it may be', async () => {
    const t = await newApp();
    const run = await startRun(t);
    const res = await t.request({
      method: 'GET',
      url: `/v1/runs/${run.run_id}/events?after_seq=1627353037507372`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details.errors[0].message).toMatch(/15 digits|999999999999999/);
  });
});
