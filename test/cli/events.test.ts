/**
 * `arp-rc events` and `arp-rc runs start --wait` against the real app: snapshots pretty and as
 * NDJSON passed through unchanged, --after-seq, a follow that ends when the Run ends, Ctrl-C, and
 * the exit code of a waited-for Run, driven by a loopback fake Atomic Executor. Every step waits on
 * the CLI's output or the app's commits, never on a clock.
 */
import { describe, expect, it } from 'vitest';
import { AE_EXECUTE, useDispatch } from '../dispatch/harness.js';
import { createChildren, startRun, type TestApp, useApp } from '../helpers/app.js';
import { type Reply, replies } from '../helpers/executors.js';
import { arpRc, expectServiceError, serve, startCli } from './harness.js';

const newApp = useApp();
const h = useDispatch();

const T0 = '2026-01-01T00:00:00.000Z';

async function served(): Promise<{ t: TestApp; url: string }> {
  const t = await newApp();
  return { t, url: await serve(t) };
}

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('events', () => {
  it('prints a snapshot as seq, time, type, node_run_id and a summary of the data', async () => {
    const { t, url } = await served();
    await startRun(t);
    await createChildren(t, 'run_1', 'node_run_1', [
      { node_type_ref: { node_type_id: 'atomic.a', version: '1' }, inputs: {} },
    ]);
    const result = await arpRc(['events', 'run_1', '--url', url]);
    expect(result).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        `   1  ${T0}  run_started              -  root_node_run_id=node_run_1`,
        `   2  ${T0}  node_run_assigned        node_run_1  root=true`,
        `   3  ${T0}  composite_decomposed     node_run_1  node_run_count=1 round=1`,
        `   4  ${T0}  node_run_assigned        node_run_2  parent_node_run_id=node_run_1`,
        '',
      ].join('\n'),
    });
  });

  it('passes the NDJSON lines through unchanged with --json, and starts after --after-seq', async () => {
    const { t, url } = await served();
    await startRun(t);
    const stream = await t.request({ method: 'GET', url: '/v1/runs/run_1/events' });
    expect(await arpRc(['events', 'run_1', '--json', '--url', url])).toEqual({
      code: 0,
      stderr: '',
      stdout: stream.body,
    });
    const after = await arpRc(['events', 'run_1', '--json', '--after-seq', '1', '--url', url]);
    expect(after).toEqual({ code: 0, stderr: '', stdout: `${lines(stream.body)[1]}\n` });
  });

  it('follows until the Run ends, then exits 0', async () => {
    const { t, url } = await served();
    await startRun(t);
    const cli = startCli(['events', 'run_1', '--follow', '--url', url]);
    await cli.untilStdout((out) => lines(out).length === 2);
    const done = await t.request({
      method: 'POST',
      url: '/v1/node-runs/node_run_1:complete',
      payload: { state: 'succeeded', outputs: {} },
    });
    expect(done.statusCode).toBe(204);
    const result = await cli.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(lines(result.stdout).map((line) => line.split(/\s+/).slice(1, 4))).toEqual([
      ['1', T0, 'run_started'],
      ['2', T0, 'node_run_assigned'],
      ['3', T0, 'run_completed'],
    ]);
  });

  it('exits 3 when the service goes away before the Run ends, not 0', async () => {
    const { t, url } = await served();
    await startRun(t);
    const cli = startCli(['events', 'run_1', '--follow', '--url', url]);
    await cli.untilStdout((out) => lines(out).length === 2);
    // Closing the app ends its open streams, as a shutdown does.
    await t.close();
    const result = await cli.done;
    expect({ code: result.code, lines: lines(result.stdout).length }).toEqual({ code: 3, lines: 2 });
    expect(result.stderr).toMatch(
      new RegExp(
        `^arp-rc: cannot reach ${url}/v1/runs/run_1/events: the stream ended before the Run did \\(.*\\)\\n$`,
      ),
    );
  });

  it('stops a follow on Ctrl-C with exit 130 and nothing on stderr', async () => {
    const { t, url } = await served();
    await startRun(t);
    const cli = startCli(['events', 'run_1', '-f', '--json', '--url', url]);
    await cli.untilStdout((out) => lines(out).length === 2);
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result).toEqual({ code: 130, stderr: '', stdout: expect.stringMatching(/^(\{.*\}\n){2}$/) });
  });

  it('exits 2 for a bad --after-seq without calling the service, and 1 for an unknown Run', async () => {
    const { url } = await served();
    expect(await arpRc(['events', 'run_1', '--after-seq', 'x', '--url', url])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'arp-rc: --after-seq: expected a whole number, 0 or more, not "x"\nRun "arp-rc events --help" for usage.\n',
    });
    expectServiceError(
      await arpRc(['events', 'nope', '--url', url]),
      "run_not_found: Run 'nope' not found",
      404,
    );
  });
});

describe('runs start --wait', () => {
  const echo = ['runs', 'start', '--type', 'atomic.echo', '--input', '{"text": "hi"}', '--wait'];

  async function withExecutor(reply: (nodeRunId: string) => Reply) {
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, (r) => reply((r.body as { node_run_id: string }).node_run_id));
    const t = await h.app({ services: { atomicExecutor: ae.url } });
    return { t, url: await serve(t) };
  }

  it('follows the events of a Run the executor completes and exits 0', async () => {
    const { url } = await withExecutor((id) => replies.succeeded(id, { text: 'hi' }));
    const result = await arpRc([...echo, '--url', url]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = lines(result.stdout);
    expect(out.slice(0, 4)).toEqual([
      'Run run_1  running',
      '  root       node_run_1',
      '  root type  atomic.echo@1.0.0',
      `  started    ${T0}`,
    ]);
    expect(out.slice(4, -1).map((line) => line.split(/\s+/)[3])).toEqual([
      'run_started',
      'node_run_assigned',
      'policy_decided',
      'policy_decided',
      'node_evaluated',
      'atomic_executed',
      'run_completed',
    ]);
    expect(out.at(-1)).toBe('Run run_1 succeeded after 0ms');
  });

  it('exits 4 when the Run fails, printing the Run as it ended with --json', async () => {
    const { t, url } = await withExecutor((id) => replies.failed(id, 'tool_error'));
    const result = await arpRc([...echo, '--json', '--url', url]);
    const run = await t.request({ method: 'GET', url: '/v1/runs/run_1' });
    expect(run.json().state).toBe('failed');
    expect(result).toEqual({ code: 4, stderr: '', stdout: `${run.body}\n` });
  });

  it('exits 5 when the Run is canceled while it is followed', async () => {
    const { t, url } = await served();
    const cli = startCli(['runs', 'start', '--type', 'composite.x', '--wait', '--url', url]);
    await cli.untilStdout((out) => out.includes('node_run_assigned'));
    expect((await t.request({ method: 'POST', url: '/v1/runs/run_1:cancel' })).statusCode).toBe(200);
    const result = await cli.done;
    expect({ code: result.code, stderr: result.stderr, last: lines(result.stdout).at(-1) }).toEqual({
      code: 5,
      stderr: '',
      last: 'Run run_1 canceled after 0ms',
    });
  });
});
