/**
 * Bounds on what callers can make the process hold: a cap on live (unfinished) Runs, answered with a
 * retryable 503 envelope beyond it, and a default wall-time budget for Runs that set none, so that
 * abandoned Runs end by themselves.
 */
import { describe, expect, it } from 'vitest';
import { ref, startRun, useApp } from '../helpers/app.js';

const newApp = useApp();

const start = (t: Awaited<ReturnType<typeof newApp>>, runId: string, extra: Record<string, unknown> = {}) =>
  t.request({
    method: 'POST',
    url: '/v1/runs',
    payload: { run_id: runId, root_node_type_ref: ref('composite.r'), input: {}, ...extra },
  });

describe('maxLiveRuns', () => {
  it('beyond the cap a new Run is 503 service_unavailable (retryable) and nothing is created', async () => {
    const t = await newApp({ options: { maxLiveRuns: 2 } });
    expect((await start(t, 'a')).statusCode).toBe(200);
    expect((await start(t, 'b')).statusCode).toBe(200);
    const over = await start(t, 'c');
    expect(over.statusCode).toBe(503);
    expect(over.json().error).toMatchObject({
      code: 'service_unavailable',
      retryable: true,
      details: { limit: 2 },
    });
    expect((await t.request({ method: 'GET', url: '/v1/runs/c' })).statusCode).toBe(404);
  });

  it('an identical retry of an existing Run is still answered at the cap', async () => {
    const t = await newApp({ options: { maxLiveRuns: 1 } });
    expect((await start(t, 'a')).statusCode).toBe(200);
    const retry = await start(t, 'a');
    expect(retry.statusCode, retry.body).toBe(200);
    expect(retry.json().run_id).toBe('a');
  });

  it('a finished Run frees its place', async () => {
    const t = await newApp({ options: { maxLiveRuns: 1 } });
    expect((await start(t, 'a')).statusCode).toBe(200);
    expect((await start(t, 'b')).statusCode).toBe(503);
    await t.request({ method: 'POST', url: '/v1/runs/a:cancel' });
    expect((await start(t, 'b')).statusCode).toBe(200);
  });
});

describe('defaultMaxWallTimeMs', () => {
  it('gives a Run without max_wall_time_ms the default, visible in rc.constraints, and expires it', async () => {
    const t = await newApp({ options: { defaultMaxWallTimeMs: 60_000 } });
    const run = await startRun(t, { constraints: { structural: { max_depth: 2 } } });
    const got = (await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}` })).json();
    expect(got.extensions['rc.constraints']).toEqual({
      structural: { max_depth: 2 },
      budgets: { max_wall_time_ms: 60_000 },
    });
    expect(t.app.coordinator.armedDeadlines).toBe(1);
    t.clock.advance(60_000);
    const expired = await t.app.coordinator.expireRun(run.run_id);
    expect(expired.state).toBe('failed');
    expect(expired.extensions?.['rc.completion_error']).toMatchObject({ code: 'budget_exceeded' });
  });

  it('leaves a Run that sets its own max_wall_time_ms alone, even a longer one', async () => {
    const t = await newApp({ options: { defaultMaxWallTimeMs: 60_000 } });
    const run = await startRun(t, { constraints: { budgets: { max_wall_time_ms: 3_600_000 } } });
    const got = (await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}` })).json();
    expect(got.extensions['rc.constraints']).toEqual({ budgets: { max_wall_time_ms: 3_600_000 } });
  });

  it('an identical retry is still recognised as identical', async () => {
    const t = await newApp({ options: { defaultMaxWallTimeMs: 60_000 } });
    expect((await start(t, 'a')).statusCode).toBe(200);
    expect((await start(t, 'a')).statusCode).toBe(200);
  });
});
