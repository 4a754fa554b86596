/**
 * The route table: every operation of openapi/run-coordinator.yaml reaches its handler in the real
 * app (never the router's 404 `not_found` / 405 `method_not_allowed`), the `{id}:verb` paths route
 * by verb and method, and the contract and docs are served.
 */
import { readFileSync } from 'node:fs';
import type { InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type TestApp, useApp } from '../helpers/app.js';
import { CONTRACT_FILE } from '../helpers/paths.js';

interface Document {
  openapi: string;
  paths: Record<string, Record<string, { operationId: string; requestBody?: unknown }>>;
}

const document = parse(readFileSync(CONTRACT_FILE, 'utf8')) as Document;

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

const operations = Object.entries(document.paths).flatMap(([template, item]) =>
  Object.entries(item)
    .filter(([method]) => HTTP_METHODS.has(method))
    .map(([method, operation]) => ({
      method: method.toUpperCase() as 'GET' | 'POST',
      template,
      operationId: operation.operationId,
      url: template.replace(/\{\w+\}/g, 'x'),
    })),
);

/** What each operation answers for id `x` and body `{}`: it reached its handler. */
const EXPECTED: Record<string, { status: number; code?: string }> = {
  health: { status: 200 },
  version: { status: 200 },
  start_run: { status: 400, code: 'invalid_request' },
  get_run: { status: 404, code: 'run_not_found' },
  cancel_run: { status: 404, code: 'run_not_found' },
  stream_run_events: { status: 404, code: 'run_not_found' },
  create_node_runs: { status: 400, code: 'invalid_request' },
  get_node_run: { status: 404, code: 'node_run_not_found' },
  stream_node_run_events: { status: 404, code: 'node_run_not_found' },
  report_node_run_evaluation: { status: 400, code: 'invalid_request' },
  complete_node_run: { status: 400, code: 'invalid_request' },
};

const ROUTER_CODES = ['not_found', 'method_not_allowed'];

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
  readonly allow: string | undefined;
  /** operationId of the route that answered (undefined: the router's not-found handler). */
  readonly operationId: string | undefined;
  readonly body: string;
}

/** Injects a request; `tracedApp` reports in a header which route answered it. */
async function call(t: TestApp, options: InjectOptions): Promise<Answer> {
  const response = await t.request(options);
  const json = (() => {
    try {
      return response.json() as { error?: { code?: string } };
    } catch {
      return undefined;
    }
  })();
  return {
    status: response.statusCode,
    code: json?.error?.code,
    allow: response.headers.allow as string | undefined,
    operationId: response.headers['x-test-operation-id'] as string | undefined,
    body: response.body,
  };
}

describe('route table', () => {
  const app = useApp();

  /** A test app that tells, in a response header, which operation's route answered. */
  async function tracedApp(): Promise<TestApp> {
    const t = await app();
    t.app.addHook('onSend', async (request, reply, payload) => {
      const operationId = request.routeOptions.config?.operationId;
      if (operationId) reply.header('x-test-operation-id', operationId);
      return payload;
    });
    return t;
  }

  it('reads the operations of the contract', () => {
    expect(operations.length).toBeGreaterThanOrEqual(11);
    expect(Object.keys(EXPECTED).sort()).toEqual(operations.map((op) => op.operationId).sort());
  });

  it.each(operations.map((op) => [op.method, op.template, op] as const))(
    '%s %s reaches its handler',
    async (method, _template, op) => {
      const t = await tracedApp();
      const answer = await call(t, { method, url: op.url, ...(method === 'POST' ? { payload: {} } : {}) });
      expect(ROUTER_CODES, answer.body).not.toContain(answer.code);
      expect(answer.operationId, answer.body).toBe(op.operationId);
      const expected = EXPECTED[op.operationId]!;
      expect(answer.status, answer.body).toBe(expected.status);
      expect(answer.code, answer.body).toBe(expected.code);
    },
  );

  describe('{id}:verb routing', () => {
    it('POST /v1/runs/{id}:cancel reaches cancel_run', async () => {
      const t = await tracedApp();
      const answer = await call(t, { method: 'POST', url: '/v1/runs/x:cancel' });
      expect([answer.status, answer.code, answer.operationId]).toEqual([404, 'run_not_found', 'cancel_run']);
    });

    it('a %3A-encoded colon routes the same', async () => {
      const t = await tracedApp();
      for (const url of ['/v1/runs/x%3Acancel', '/v1/runs/x%3acancel']) {
        const answer = await call(t, { method: 'POST', url });
        expect([answer.status, answer.code, answer.operationId], url).toEqual([
          404,
          'run_not_found',
          'cancel_run',
        ]);
      }
    });

    it('cancels a real Run through the colon path', async () => {
      const t = await tracedApp();
      const started = await t.request({
        method: 'POST',
        url: '/v1/runs',
        payload: { root_node_type_ref: { node_type_id: 'composite.root', version: '1.0.0' }, input: {} },
      });
      expect(started.statusCode, started.body).toBe(200);
      const runId = (started.json() as { run_id: string }).run_id;
      const canceled = await t.request({ method: 'POST', url: `/v1/runs/${runId}:cancel` });
      expect(canceled.statusCode, canceled.body).toBe(200);
      expect(canceled.json()).toMatchObject({ run_id: runId, state: 'canceled' });
    });

    it('POST /v1/runs/{id}:bogus is the router 404 not_found', async () => {
      const t = await tracedApp();
      for (const url of ['/v1/runs/x:bogus', '/v1/runs/x:cancel:cancel', '/v1/runs/x:complete']) {
        const answer = await call(t, { method: 'POST', url });
        expect([answer.status, answer.code], url).toEqual([404, 'not_found']);
      }
    });

    it('GET /v1/runs/{id}:cancel is 405 method_not_allowed with allow: POST', async () => {
      const t = await tracedApp();
      for (const url of ['/v1/runs/x:cancel', '/v1/runs/x%3Acancel']) {
        const answer = await call(t, { method: 'GET', url });
        expect([answer.status, answer.code, answer.allow], url).toEqual([405, 'method_not_allowed', 'POST']);
      }
    });

    it('POST /v1/runs/{id} is 405 method_not_allowed with allow: GET', async () => {
      const t = await tracedApp();
      const answer = await call(t, { method: 'POST', url: '/v1/runs/x', payload: {} });
      expect([answer.status, answer.code, answer.allow]).toEqual([405, 'method_not_allowed', 'GET']);
    });

    it('POST /v1/node-runs/{id}:complete reaches complete_node_run', async () => {
      const t = await tracedApp();
      const answer = await call(t, { method: 'POST', url: '/v1/node-runs/x:complete', payload: {} });
      expect([answer.status, answer.code, answer.operationId]).toEqual([
        400,
        'invalid_request',
        'complete_node_run',
      ]);
    });

    it('POST /v1/node-runs/{id}:evaluation reaches report_node_run_evaluation', async () => {
      const t = await tracedApp();
      const answer = await call(t, { method: 'POST', url: '/v1/node-runs/x:evaluation', payload: {} });
      expect([answer.status, answer.code, answer.operationId]).toEqual([
        400,
        'invalid_request',
        'report_node_run_evaluation',
      ]);
    });

    it('GET /v1/node-runs/{id}:complete and :evaluation are 405 with allow: POST', async () => {
      const t = await tracedApp();
      for (const url of [
        '/v1/node-runs/x:complete',
        '/v1/node-runs/x:evaluation',
        '/v1/node-runs/x%3Acomplete',
      ]) {
        const answer = await call(t, { method: 'GET', url });
        expect([answer.status, answer.code, answer.allow], url).toEqual([405, 'method_not_allowed', 'POST']);
      }
    });

    it('a verb of another resource is 404 not_found', async () => {
      const t = await tracedApp();
      const answer = await call(t, { method: 'POST', url: '/v1/node-runs/x:cancel' });
      expect([answer.status, answer.code]).toEqual([404, 'not_found']);
    });

    it('GET /v1/runs/{id}:bogus is 404 not_found, not a run id', async () => {
      const t = await tracedApp();
      for (const url of ['/v1/runs/x:bogus', '/v1/runs/x%3Abogus', '/v1/runs/x:cancel/events']) {
        const answer = await call(t, { method: 'GET', url });
        expect([answer.status, answer.code], url).toEqual([404, 'not_found']);
      }
    });

    it('unknown methods on known paths are 405 with the allowed method', async () => {
      const t = await tracedApp();
      const cases: [InjectOptions['method'], string, string][] = [
        ['DELETE', '/v1/runs/x:cancel', 'POST'],
        ['PUT', '/v1/runs/x', 'GET'],
        ['POST', '/v1/health', 'GET'],
        ['GET', '/v1/node-runs', 'POST'],
        ['GET', '/v1/runs', 'POST'],
      ];
      for (const [method, url, allow] of cases) {
        const answer = await call(t, { method, url });
        expect([answer.status, answer.code, answer.allow], `${method} ${url}`).toEqual([
          405,
          'method_not_allowed',
          allow,
        ]);
      }
    });

    it('an empty id segment is no route: 404 not_found, as for POST /v1/runs/:cancel', async () => {
      const t = await tracedApp();
      const cases: [InjectOptions['method'], string][] = [
        ['POST', '/v1/runs/:cancel'],
        ['POST', '/v1/runs/'],
        ['GET', '/v1/runs/'],
        ['GET', '/v1/node-runs/'],
        ['GET', '/v1/runs//events'],
        ['GET', '/v1/node-runs//events'],
      ];
      const answers = [];
      for (const [method, url] of cases) {
        const answer = await call(t, { method, url });
        answers.push({ request: `${method} ${url}`, status: answer.status, code: answer.code });
      }
      expect(answers).toEqual(
        cases.map(([method, url]) => ({ request: `${method} ${url}`, status: 404, code: 'not_found' })),
      );
    });
  });

  describe('contract and docs', () => {
    it('GET /openapi.json serves the project document', async () => {
      const t = await tracedApp();
      const response = await t.request({ method: 'GET', url: '/openapi.json' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      const served = response.json() as Document;
      expect(served.openapi).toBe('3.0.3');
      expect(Object.keys(served.paths).sort()).toEqual(Object.keys(document.paths).sort());
      expect(served).toEqual(document);
    });

    it('GET /docs serves the HTML docs UI', async () => {
      const t = await tracedApp();
      let url = '/docs';
      let response = await t.request({ method: 'GET', url });
      for (let hops = 0; hops < 5 && response.statusCode >= 300 && response.statusCode < 400; hops += 1) {
        const location = String(response.headers.location);
        const next = new URL(location, `http://localhost${url}`);
        url = `${next.pathname}${next.search}`;
        response = await t.request({ method: 'GET', url });
      }
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/html/);
      expect(response.body).toMatch(/<html/i);
    });
  });
});
