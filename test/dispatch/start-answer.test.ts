/**
 * start_run answers the Run as its own commits left it (running, or failed by a run.start deny),
 * never as a later read of the store would show it: by then dispatch may have ended it (a denied
 * node.run.execute, a failing executor), and a store whose reads wait behind other work made the
 * answer depend on that race.
 */
import { expect, it } from 'vitest';
import type { PolicyDecision } from '../../src/gen/contract.js';
import { ManualClock } from '../helpers/app.js';
import { replies } from '../helpers/executors.js';
import { intercept, newTestStore } from '../helpers/stores.js';
import { AE_EXECUTE, completionError, PDP_DECIDE, startRun, useDispatch } from './harness.js';

const h = useDispatch();
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

/** A store whose reads of a Run answer as if dispatch had already failed it. */
async function laterReads(clock: ManualClock) {
  const inner = await newTestStore(clock);
  return intercept(inner, {
    async getRun(runId) {
      const record = await inner.getRun(runId);
      return record && { ...record, run: { ...record.run, state: 'failed' as const } };
    },
  });
}

it.each<[string, PolicyDecision, string]>([
  ['allowed', { decision: 'allow', reason_code: 'ok' }, 'running'],
  ['denied', { decision: 'deny', reason_code: 'no' }, 'failed'],
])('a start that policy %s is answered as its own commits left it', async (_name, decision, state) => {
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => replies.succeeded((r.body as { node_run_id: string }).node_run_id));
  const pdp = await h.fake();
  pdp.on('POST', PDP_DECIDE, () => ({ json: decision }));
  const clock = new ManualClock();
  const store = await laterReads(clock);
  const t = await h.app({ services: { atomicExecutor: ae.url, pdp: pdp.url } }, { clock, store });
  const run = await startRun(t, { root_node_type_ref: echo });
  expect(run.state).toBe(state);
  if (state === 'failed') expect(completionError(run)?.code).toBe('policy_denied');
});
