/**
 * The commands that read the listing API (openapi/run-listing.yaml): `runs list` and the NodeRun
 * tree of `runs get`. Against a loopback fake that answers as the document says, so that the query
 * sent, the pagination and the drawing are checked exactly; and against the real app, whose
 * answers the fake must agree with.
 */
import { describe, expect, it } from 'vitest';
import { startRun, useApp } from '../helpers/app.js';
import { type RecordedRequest, useFakes } from '../helpers/executors.js';
import { arpRc, serve } from './harness.js';

const fakes = useFakes();
const newApp = useApp();

const T0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();

const RUN_B = {
  run: { run_id: 'run_b', state: 'failed', root_node_run_id: 'nb', started_at: T0, ended_at: at(125) },
  root_node_type_id: 'composite.planner',
};
const RUN_A = {
  run: { run_id: 'run_a', state: 'running', root_node_run_id: 'na', started_at: T0 },
  root_node_type_id: 'atomic.echo',
};

const TABLE = [
  'RUN ID  STATE    ROOT TYPE          STARTED                   DURATION',
  `run_b   failed   composite.planner  ${T0}  2m05s`,
  `run_a   running  atomic.echo        ${T0}  -`,
  '',
].join('\n');

/** A fake listing service whose pages are chosen by the `cursor` parameter ('' for the first). */
async function listing(pages: Record<string, unknown>) {
  const fake = await fakes.fake();
  fake.on('GET', '/rc/v1/runs', (r) => ({ json: pages[r.query.get('cursor') ?? ''] }));
  return fake;
}

const queries = (requests: readonly RecordedRequest[]) => requests.map((r) => Object.fromEntries(r.query));

describe('runs list', () => {
  it('sends every filter as the listing API names it and prints a table; more pages are announced on stderr', async () => {
    const fake = await listing({ '': { items: [RUN_B, RUN_A], next_cursor: 'c2' } });
    const result = await arpRc(
      [
        'runs',
        'list',
        '--state',
        'running,queued',
        '--type',
        'composite.x',
        '--tenant',
        'acme',
        '--since',
        '2026-01-01T00:00:00Z',
        '--until',
        '2026-01-02',
        '--limit',
        '2',
      ],
      { env: { RC_URL: fake.url } },
    );
    expect(result).toEqual({
      code: 0,
      stdout: TABLE,
      stderr: 'more Runs: arp-rc runs list ... --cursor c2 (or --all)\n',
    });
    expect(queries(fake.requests)).toEqual([
      {
        state: 'running,queued',
        root_node_type_id: 'composite.x',
        tenant_id: 'acme',
        started_after: T0,
        started_before: '2026-01-02T00:00:00.000Z',
        limit: '2',
      },
    ]);
  });

  it('follows next_cursor with --all, and --cursor starts from a given page', async () => {
    const fake = await listing({ '': { items: [RUN_B], next_cursor: 'c2' }, c2: { items: [RUN_A] } });
    expect(await arpRc(['runs', 'list', '--all', '--url', fake.url])).toEqual({
      code: 0,
      stdout: TABLE,
      stderr: '',
    });
    expect(queries(fake.requests)).toEqual([{}, { cursor: 'c2' }]);
    const second = await arpRc(['runs', 'list', '--cursor', 'c2', '--json', '--url', fake.url]);
    expect(second).toEqual({ code: 0, stderr: '', stdout: `${JSON.stringify({ items: [RUN_A] })}\n` });
  });

  it('prints the page as answered with --json, and every page as one {"items"} with --all --json', async () => {
    const page = { items: [RUN_B], next_cursor: 'c2' };
    const fake = await listing({ '': page, c2: { items: [RUN_A] } });
    expect(await arpRc(['runs', 'list', '--json', '--url', fake.url])).toEqual({
      code: 0,
      stderr: '',
      stdout: `${JSON.stringify(page)}\n`,
    });
    expect(await arpRc(['runs', 'list', '--json', '--all', '--url', fake.url])).toEqual({
      code: 0,
      stderr: '',
      stdout: `${JSON.stringify({ items: [RUN_B, RUN_A] })}\n`,
    });
  });

  it('says so when no Run matches', async () => {
    const fake = await listing({ '': { items: [] } });
    expect(await arpRc(['runs', 'list', '--url', fake.url])).toEqual({
      code: 0,
      stdout: 'No Runs match.\n',
      stderr: '',
    });
  });

  it.each([
    [
      ['--state', 'running,done'],
      '--state: expected some of queued,running,succeeded,failed,canceled, not "running,done"',
    ],
    [
      ['--since', 'yesterday'],
      '--since: expected an ISO 8601 time such as 2026-01-31T12:00:00Z, not yesterday',
    ],
    [['--limit', '0'], '--limit: expected 1 to 200, not 0'],
    [['--colour'], 'unknown option --colour'],
    [['--type'], '--type needs a value'],
    [['--all=yes'], '--all takes no value'],
    [['extra'], 'expected no arguments, got extra'],
  ])('exits 2 for %j without calling the service', async (flags, message) => {
    const fake = await listing({});
    expect(await arpRc(['runs', 'list', ...flags, '--url', fake.url])).toEqual({
      code: 2,
      stdout: '',
      stderr: `arp-rc: ${message}\nRun "arp-rc runs list --help" for usage.\n`,
    });
    expect(fake.requests).toEqual([]);
  });

  it('exits 1 and names the missing listing API when the service has no /rc/v1 routes', async () => {
    const fake = await fakes.fake();
    const result = await arpRc(['runs', 'list', '--url', fake.url]);
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: 'arp-rc: not_found: no such route; this service has no listing API (/rc/v1) (HTTP 404)\n',
    });
  });
});

const node = (
  id: string,
  parent: string | undefined,
  kind: string,
  state: string,
  times: [number, number],
  error?: object,
) => ({
  node_run_id: id,
  run_id: 'r1',
  ...(parent ? { parent_node_run_id: parent } : {}),
  node_type_ref: { node_type_id: `${kind}.${id}`, version: '1' },
  kind,
  state,
  created_at: at(times[0]),
  started_at: at(times[0]),
  ended_at: at(times[1]),
  ...(error ? { extensions: { 'rc.completion_error': error } } : {}),
});

describe('runs get: the NodeRun tree', () => {
  it('draws every page of NodeRuns as a tree, children in creation order, with their errors', async () => {
    const fake = await fakes.fake();
    const run = {
      run_id: 'r1',
      state: 'succeeded',
      root_node_run_id: 'n1',
      started_at: T0,
      ended_at: at(10),
    };
    fake.on('GET', '/v1/runs/r1', () => ({ json: run }));
    const pages: Record<string, unknown> = {
      '': {
        items: [
          node('n1', undefined, 'composite', 'succeeded', [0, 10]),
          node('n3', 'n1', 'atomic', 'succeeded', [5, 6.5]),
          node('n2', 'n1', 'composite', 'failed', [1, 4], {
            code: 'child_failed',
            message: 'a child failed',
          }),
        ],
        next_cursor: 'p2',
      },
      p2: {
        items: [
          node('n4', 'n2', 'atomic', 'failed', [2, 3], { code: 'tool_error', message: 'timeout' }),
          node('n5', 'n2', 'atomic', 'canceled', [2, 4], { code: 'parent_failed' }),
        ],
      },
    };
    fake.on('GET', '/rc/v1/runs/r1/node-runs', (r) => ({ json: pages[r.query.get('cursor') ?? ''] }));
    const result = await arpRc(['runs', 'get', 'r1', '--url', fake.url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'Run r1  succeeded',
        '  root       n1',
        '  root type  composite.n1@1',
        `  started    ${T0}`,
        `  ended      ${at(10)}`,
        '  duration   10.0s',
        '',
        'n1  composite  succeeded  composite.n1@1  10.0s',
        '├── n2  composite  failed  composite.n2@1  3.0s',
        '│   │   error: child_failed: a child failed',
        '│   ├── n4  atomic  failed  atomic.n4@1  1.0s',
        '│   │       error: tool_error: timeout',
        '│   └── n5  atomic  canceled  atomic.n5@1  2.0s',
        '│           error: parent_failed',
        '└── n3  atomic  succeeded  atomic.n3@1  1.5s',
        '',
      ].join('\n'),
    });
    expect(fake.requests.filter((r) => r.path.startsWith('/rc/')).map((r) => r.url)).toEqual([
      '/rc/v1/runs/r1/node-runs?limit=1000',
      '/rc/v1/runs/r1/node-runs?limit=1000&cursor=p2',
    ]);
  });

  it('draws only the root, and says why, when the service has no listing API', async () => {
    const fake = await fakes.fake();
    fake.on('GET', '/v1/runs/r1', () => ({
      json: { run_id: 'r1', state: 'running', root_node_run_id: 'n1' },
    }));
    fake.on('GET', '/v1/node-runs/n1', () => ({
      json: { ...node('n1', undefined, 'atomic', 'running', [0, 0]), ended_at: undefined },
    }));
    expect(await arpRc(['runs', 'get', 'r1', '--url', fake.url])).toEqual({
      code: 0,
      stderr: 'the service has no listing API (/rc/v1): only the root NodeRun is shown\n',
      stdout: [
        'Run r1  running',
        '  root       n1',
        '  root type  atomic.n1@1',
        '',
        'n1  atomic  running  atomic.n1@1  -',
        '',
      ].join('\n'),
    });
  });
});

describe('against the real app', () => {
  it('lists the Runs it started, newest first, with the filters applied by the coordinator', async () => {
    const t = await newApp();
    const url = await serve(t);
    await startRun(t, { run_context: { tenant_id: 'acme' } });
    t.clock.advance(1000);
    await startRun(t, { root_node_type_ref: { node_type_id: 'atomic.other', version: '1' } });
    expect(await arpRc(['runs', 'list', '--url', url])).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        'RUN ID  STATE    ROOT TYPE       STARTED                   DURATION',
        `run_2   running  atomic.other    ${at(1)}  -`,
        `run_1   running  composite.root  ${T0}  -`,
        '',
      ].join('\n'),
    });
    const acme = await arpRc(['runs', 'list', '--tenant', 'acme', '--json', '--url', url]);
    expect(JSON.parse(acme.stdout).items.map((i: { run: { run_id: string } }) => i.run.run_id)).toEqual([
      'run_1',
    ]);
    const paged = await arpRc(['runs', 'list', '--limit', '1', '--all', '--json', '--url', url]);
    expect(JSON.parse(paged.stdout).items.map((i: { run: { run_id: string } }) => i.run.run_id)).toEqual([
      'run_2',
      'run_1',
    ]);
  });

  it('reports a filter the coordinator refuses as its invalid_request (exit 1)', async () => {
    const t = await newApp();
    const result = await arpRc(['runs', 'list', '--type', '', '--url', await serve(t)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^arp-rc: invalid_request: Query parameter root_node_type_id must not be empty/,
    );
  });
});
