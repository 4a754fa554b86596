/**
 * `arp-rc runs start|get|cancel` and `node-runs get` as a child process against the real app on a
 * loopback port: exact stdout, stderr and exit codes, pretty and --json, the request file flow of
 * scripts/request.json, the service's errors and an unreachable service.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createChildren, type TestApp, useApp } from '../helpers/app.js';
import { closedPortUrl, useFakes } from '../helpers/executors.js';
import { arpRc, expectServiceError, serve } from './harness.js';

const newApp = useApp();

async function served(): Promise<{ t: TestApp; url: string }> {
  const t = await newApp();
  return { t, url: await serve(t) };
}

const T0 = '2026-01-01T00:00:00.000Z';

describe('runs start', () => {
  it('starts a Run from --type and --input and prints it', async () => {
    const { t, url } = await served();
    const result = await arpRc([
      'runs',
      'start',
      '--type',
      'composite.planner',
      '--input',
      '{"goal": "summarise"}',
      '--url',
      url,
    ]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Run run_1  running',
        '  root       node_run_1',
        '  root type  composite.planner@1.0.0',
        `  started    ${T0}`,
        '',
      ].join('\n'),
    });
    const root = await t.request({ method: 'GET', url: '/v1/node-runs/node_run_1' });
    expect(root.json()).toMatchObject({
      node_type_ref: { node_type_id: 'composite.planner', version: '1.0.0' },
      inputs: { goal: 'summarise' },
    });
  });

  it('takes --version, --run-id and --tenant, and prints the Run as JSON with --json', async () => {
    const { t, url } = await served();
    const result = await arpRc(
      [
        'runs',
        'start',
        '--type',
        'atomic.x',
        '--version',
        '2',
        '--run-id',
        'mine',
        '--tenant',
        'acme',
        '--json',
      ],
      { env: { RC_URL: url } },
    );
    const run = await t.request({ method: 'GET', url: '/v1/runs/mine' });
    expect(result).toEqual({ code: 0, stderr: '', stdout: `${run.body}\n` });
    expect(run.json()).toMatchObject({ run_id: 'mine', run_context: { tenant_id: 'acme' } });
    const root = await t.request({ method: 'GET', url: `/v1/node-runs/${run.json().root_node_run_id}` });
    expect(root.json()).toMatchObject({
      node_type_ref: { node_type_id: 'atomic.x', version: '2' },
      inputs: {},
    });
  });

  it('runs the flow of scripts/request.json with --file: the Run, then its NodeRuns under the root', async () => {
    const { t, url } = await served();
    const result = await arpRc(['runs', 'start', '--file', 'scripts/request.json', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Run run_1  running',
        '  root       node_run_1',
        '  root type  composite.example.planner@1.0.0',
        `  started    ${T0}`,
        '',
        'NodeRuns created under node_run_1:',
        '  node_run_2  atomic.example.fetch@1.0.0  queued',
        '  node_run_3  atomic.example.summarise@1.0.0  queued',
        '',
      ].join('\n'),
    });
    const child = await t.request({ method: 'GET', url: '/v1/node-runs/node_run_3' });
    expect(child.json()).toMatchObject({ parent_node_run_id: 'node_run_1', inputs: { max_words: 200 } });
  });

  it('prints {run, node_runs} with --file and --json', async () => {
    const { t, url } = await served();
    const result = await arpRc(['runs', 'start', '--file', 'scripts/request.json', '--json', '--url', url]);
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as { run: unknown; node_runs: { node_run_id: string }[] };
    expect(printed.run).toEqual((await t.request({ method: 'GET', url: '/v1/runs/run_1' })).json());
    expect(printed.node_runs.map((n) => n.node_run_id)).toEqual(['node_run_2', 'node_run_3']);
  });

  it("names the Run it started when the file's node_runs are refused", async () => {
    const { t, url } = await served();
    const dir = await mkdtemp(path.join(tmpdir(), 'arp-rc-runs-'));
    const file = path.join(dir, 'request.json');
    await writeFile(
      file,
      JSON.stringify({
        run: { root_node_type_ref: { node_type_id: 'atomic.leaf', version: '1' }, input: {} },
        node_runs: [{ node_type_ref: { node_type_id: 'atomic.child', version: '1' }, inputs: {} }],
      }),
    );
    try {
      const result = await arpRc(['runs', 'start', '--file', file, '--url', url]);
      expect(result).toEqual({
        code: 1,
        stdout: '',
        stderr: expect.stringMatching(
          /^arp-rc: Run run_1 was started, but the file's node_runs were not created:\narp-rc: parent_node_run_invalid: .* \(HTTP 409, request id [\w.:-]+\)\n/,
        ),
      });
      expect((await t.request({ method: 'GET', url: '/v1/runs/run_1' })).statusCode).toBe(200);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports the service refusing the request (exit 1) with its code, message and request id', async () => {
    const { url } = await served();
    await arpRc(['runs', 'start', '--type', 'composite.x', '--run-id', 'r', '--url', url]);
    const result = await arpRc(['runs', 'start', '--type', 'composite.y', '--run-id', 'r', '--url', url]);
    expectServiceError(result, "run_already_exists: Run 'r' already exists with a different request", 409, {
      run_id: 'r',
    });
  });
});

describe('runs get', () => {
  it('prints the Run, its root type, its error and the NodeRun tree', async () => {
    const { t, url } = await served();
    await arpRc(['runs', 'start', '--file', 'scripts/request.json', '--url', url]);
    await t.request({
      method: 'POST',
      url: '/v1/node-runs/node_run_2:complete',
      payload: { state: 'failed', error: { code: 'fetch_failed', message: 'no route to host' } },
    });
    const result = await arpRc(['runs', 'get', 'run_1', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Run run_1  running',
        '  root       node_run_1',
        '  root type  composite.example.planner@1.0.0',
        `  started    ${T0}`,
        '',
        'node_run_1  composite  queued  composite.example.planner@1.0.0  -',
        '├── node_run_2  atomic  failed  atomic.example.fetch@1.0.0  0ms',
        '│       error: fetch_failed: no route to host',
        '└── node_run_3  atomic  queued  atomic.example.summarise@1.0.0  -',
        '',
      ].join('\n'),
    });
  });

  it('prints the Run as the service answered it with --json', async () => {
    const { t, url } = await served();
    await arpRc(['runs', 'start', '--type', 'composite.x', '--url', url]);
    const result = await arpRc(['runs', 'get', 'run_1', '--json', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: `${(await t.request({ method: 'GET', url: '/v1/runs/run_1' })).body}\n`,
    });
  });

  it('exits 1 with run_not_found for an unknown Run', async () => {
    const { url } = await served();
    const result = await arpRc(['runs', 'get', 'nope', '--url', url]);
    expectServiceError(result, "run_not_found: Run 'nope' not found", 404);
  });
});

describe('runs cancel', () => {
  it('cancels the Run and prints it as it ended', async () => {
    const { t, url } = await served();
    await arpRc(['runs', 'start', '--type', 'composite.x', '--url', url]);
    t.clock.advance(1500);
    const result = await arpRc(['runs', 'cancel', 'run_1', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Run run_1  canceled',
        '  root      node_run_1',
        `  started   ${T0}`,
        '  ended     2026-01-01T00:00:01.500Z',
        '  duration  1.5s',
        '',
      ].join('\n'),
    });
    expect((await t.request({ method: 'GET', url: '/v1/node-runs/node_run_1' })).json().state).toBe(
      'canceled',
    );
  });

  it('exits 1 for an unknown Run', async () => {
    const { url } = await served();
    expectServiceError(
      await arpRc(['runs', 'cancel', 'nope', '--url', url]),
      "run_not_found: Run 'nope' not found",
      404,
    );
  });
});

describe('node-runs get', () => {
  it('prints the NodeRun with its outputs and the error recorded on it', async () => {
    const { t, url } = await served();
    await arpRc(['runs', 'start', '--type', 'composite.x', '--url', url]);
    await createChildren(t, 'run_1', 'node_run_1', [
      {
        node_type_ref: { node_type_id: 'atomic.fetch', version: '1' },
        inputs: { url: 'https://example.com' },
      },
    ]);
    t.clock.advance(250);
    await t.request({
      method: 'POST',
      url: '/v1/node-runs/node_run_2:complete',
      payload: { state: 'failed', outputs: { partial: true }, error: { code: 'boom', message: 'it broke' } },
    });
    const result = await arpRc(['node-runs', 'get', 'node_run_2', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'NodeRun node_run_2  failed',
        '  run       run_1',
        '  parent    node_run_1',
        '  type      atomic.fetch@1',
        '  kind      atomic',
        `  created   ${T0}`,
        '  ended     2026-01-01T00:00:00.250Z',
        '  duration  250ms',
        '  inputs    {"url":"https://example.com"}',
        '  outputs   {"partial":true}',
        '  error     boom: it broke',
        '',
      ].join('\n'),
    });
    const json = await arpRc(['node-runs', 'get', 'node_run_2', '--json', '--url', url]);
    expect(json).toEqual({
      code: 0,
      stderr: '',
      stdout: `${(await t.request({ method: 'GET', url: '/v1/node-runs/node_run_2' })).body}\n`,
    });
  });

  it('exits 1 with node_run_not_found for an unknown NodeRun', async () => {
    const { url } = await served();
    expectServiceError(
      await arpRc(['node-runs', 'get', 'nope', '--url', url]),
      "node_run_not_found: NodeRun 'nope' not found",
      404,
    );
  });
});

describe("answers that are not the coordinator's", () => {
  const fakes = useFakes();

  it('reports a non-envelope error answer (a proxy page, say) by its status, exit 1', async () => {
    const fake = await fakes.fake();
    fake.on('GET', '/v1/runs/r', () => ({
      status: 502,
      text: 'Bad Gateway',
      headers: { 'x-request-id': 'gw-7' },
    }));
    expect(await arpRc(['runs', 'get', 'r', '--url', fake.url])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'arp-rc: http_502: Bad Gateway (HTTP 502, request id gw-7)\n',
    });
  });

  it('gives up on a service that never answers after --timeout, exit 3', async () => {
    const fake = await fakes.fake();
    fake.on('GET', '/v1/runs/r', () => ({ hang: true }));
    const result = await arpRc(['runs', 'get', 'r', '--timeout', '0.2', '--url', fake.url]);
    expect(result).toEqual({
      code: 3,
      stdout: '',
      stderr: `arp-rc: cannot reach ${fake.url}/v1/runs/r: UND_ERR_HEADERS_TIMEOUT: Headers Timeout Error\n`,
    });
  });
});

describe('an unreachable service', () => {
  it('exits 3 with the address and the reason, for every command', async () => {
    const url = await closedPortUrl();
    for (const args of [
      ['runs', 'get', 'r'],
      ['runs', 'start', '--type', 'composite.x'],
      ['events', 'r', '--follow'],
    ]) {
      const result = await arpRc([...args, '--url', url]);
      expect(result, args.join(' ')).toEqual({
        code: 3,
        stdout: '',
        stderr: expect.stringMatching(
          new RegExp(`^arp-rc: cannot reach ${url}/v1/\\S+: .*ECONNREFUSED.*\\n$`),
        ),
      });
    }
  });
});
