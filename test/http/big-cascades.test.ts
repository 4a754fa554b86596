/**
 * Completing or canceling a Run that holds many NodeRuns is one atomic commit, but it must not stall
 * the process: other clients are answered while the cascade is prepared.
 */
import { describe, expect, it } from 'vitest';
import type { Decision, Needs, RunView } from '../../src/core/model.js';
import { ManualClock, ref, startRun, useApp } from '../helpers/app.js';
import { intercept, newTestStore } from '../helpers/stores.js';

const newApp = useApp();

/** A store (of the kind the test run uses) that tells when a decision on `runId` is handed to it. */
async function watchedStore(clock: ManualClock) {
  // Small cascade slices make the memory store yield many times during the commit.
  const inner = await newTestStore(clock, { maxFinishedRuns: 10, cascadeSlice: 50 });
  const watch = { runId: '', onMutate: () => {} };
  const store = intercept(inner, {
    mutate<T>(runId: string, needs: Needs, decide: (view: RunView) => Decision<T>) {
      if (runId === watch.runId) watch.onMutate();
      return inner.mutate(runId, needs, decide);
    },
  });
  return { store, watch };
}

async function bigRun(t: Awaited<ReturnType<typeof newApp>>, children: number) {
  const run = await startRun(t);
  const res = await t.request({
    method: 'POST',
    url: '/v1/node-runs',
    payload: {
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: Array.from({ length: children }, (_, i) => ({
        node_type_ref: ref('atomic.x'),
        inputs: { i },
      })),
    },
  });
  expect(res.statusCode, res.body).toBe(200);
  return { ...run, childIds: (res.json().node_runs as { node_run_id: string }[]).map((n) => n.node_run_id) };
}

describe('big cascades', () => {
  it.each([
    [
      'completing the root',
      (run: { root_node_run_id: string }) => `/v1/node-runs/${run.root_node_run_id}:complete`,
    ],
    ['canceling the Run', (run: { run_id: string }) => `/v1/runs/${run.run_id}:cancel`],
  ])('%s of a Run with 2,000 NodeRuns lets /v1/health through before it commits', async (_name, url) => {
    const clock = new ManualClock();
    const { store, watch } = await watchedStore(clock);
    const t = await newApp({ clock, store });
    const run = await bigRun(t, 2_000);
    watch.runId = run.run_id;
    const order: string[] = [];
    const committing = new Promise<void>((resolve) => {
      watch.onMutate = resolve;
    });
    const ending = t
      .request({ method: 'POST', url: url(run), payload: { state: 'succeeded' } })
      .then((res) => {
        order.push('cascade');
        return res;
      });
    // The commit has begun; another client asks for health.
    await committing;
    const health = await t.request({ method: 'GET', url: '/v1/health' });
    order.push('health');
    expect(health.statusCode).toBe(200);
    expect([200, 204]).toContain((await ending).statusCode);
    expect(order).toEqual(['health', 'cascade']);

    const last = (await t.request({ method: 'GET', url: `/v1/node-runs/${run.childIds[1_999]}` })).json();
    expect(last.state).toBe('canceled');
    const events = (await t.request({ method: 'GET', url: `/v1/runs/${run.run_id}/events` })).body
      .trim()
      .split('\n');
    expect(JSON.parse(events[events.length - 1]!).type).toBe('run_completed');
  });
});
