/**
 * What ends NodeRuns in the background is logged at warn with the ids to find it by: a dispatch
 * failure, a policy deny (at `run.start` and at `node.run.execute`), the eviction of a finished Run.
 * Never the peer's address.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { PolicyDecision, PolicyDecisionRequest } from '../../src/gen/contract.js';
import { AE_EXECUTE, idle, PDP_DECIDE, startRun, useDispatch } from '../dispatch/harness.js';
import { useApp } from '../helpers/app.js';
import { closedPortUrl } from '../helpers/executors.js';
import { onPostgres } from '../helpers/stores.js';

const h = useDispatch();
const newApp = useApp();
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };

function capture() {
  const lines: Record<string, unknown>[] = [];
  const waiting: { match: (line: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n').filter(Boolean)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const waiter of waiting.filter((w) => w.match(line))) {
          waiting.splice(waiting.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      done();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  return {
    lines,
    logger,
    warnings: () => lines.filter((line) => line.level === 40),
    /** Resolves once a line matching `match` has been written (at once if one was). */
    logged: (match: (line: Record<string, unknown>) => boolean) =>
      lines.some(match)
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiting.push({ match, resolve })),
  };
}

describe('warn lines', () => {
  it('a dispatch failure: runId, nodeRunId, the recorded code and the Run trace id, not the URL', async () => {
    const { logger, warnings } = capture();
    const url = await closedPortUrl();
    const t = await h.app({ services: { atomicExecutor: url } }, { logger });
    const run = await startRun(t, {
      root_node_type_ref: echo,
      run_context: { trace: { trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', request_id: 'req-42' } },
    });
    await idle(t);
    const failed = warnings().filter((line) => line.msg === 'dispatch failed');
    expect(failed).toEqual([
      expect.objectContaining({
        event: 'dispatch_failed',
        runId: run.run_id,
        nodeRunId: run.root_node_run_id,
        code: 'atomic_executor_unavailable',
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        // Background work names the request that started its Run.
        reqId: 'req-42',
      }),
    ]);
    expect(JSON.stringify(warnings())).not.toContain(new URL(url).host);
  });

  it('a policy deny at run.start, without a traceId when the Run has none', async () => {
    const { logger, warnings } = capture();
    const ae = await h.fake();
    const t = await h.app({ services: { atomicExecutor: ae.url }, policyDefault: 'deny' }, { logger });
    const run = await startRun(t, { root_node_type_ref: echo });
    expect(run.state).toBe('failed');
    const denied = warnings().filter((line) => line.msg === 'policy denied');
    expect(denied).toEqual([
      expect.objectContaining({
        event: 'policy_denied',
        action: 'run.start',
        runId: run.run_id,
        nodeRunId: run.root_node_run_id,
      }),
    ]);
    expect(denied[0]).not.toHaveProperty('traceId');
  });

  it('a policy deny at node.run.execute, with the PDP reason code', async () => {
    const { logger, warnings } = capture();
    const ae = await h.fake();
    const pdp = await h.fake();
    pdp.on('POST', PDP_DECIDE, (r) => {
      const { action } = r.body as PolicyDecisionRequest;
      const decision: PolicyDecision =
        action === 'run.start' ? { decision: 'allow' } : { decision: 'deny', reason_code: 'not_today' };
      return { json: decision };
    });
    const t = await h.app({ services: { atomicExecutor: ae.url, pdp: pdp.url } }, { logger });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect(warnings().filter((line) => line.msg === 'policy denied')).toEqual([
      expect.objectContaining({
        event: 'policy_denied',
        action: 'node.run.execute',
        code: 'not_today',
        runId: run.run_id,
        nodeRunId: run.root_node_run_id,
      }),
    ]);
    expect(ae.requests).toEqual([]);
  });

  it('an executor timeout', async () => {
    const { logger, warnings } = capture();
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, () => ({ hang: true }));
    const t = await h.app({ services: { atomicExecutor: ae.url }, executeTimeoutMs: 200 }, { logger });
    const run = await startRun(t, { root_node_type_ref: echo });
    await idle(t);
    expect(warnings().filter((line) => line.msg === 'executor timed out')).toEqual([
      expect.objectContaining({
        event: 'executor_timeout',
        code: 'atomic_executor_timeout',
        runId: run.run_id,
        nodeRunId: run.root_node_run_id,
      }),
    ]);
  });

  it('background work that failed names its Run and NodeRun', async () => {
    const { logger, warnings, logged } = capture();
    const ae = await h.fake();
    ae.on('POST', AE_EXECUTE, () => ({ hang: true }));
    // The cancel is answered 500, which fails the background call.
    ae.on('POST', /:cancel$/, () => ({ status: 500, json: { error: { code: 'boom', message: 'no' } } }));
    const t = await h.app({ services: { atomicExecutor: ae.url } }, { logger, onBackgroundError: undefined });
    const run = await startRun(t, { root_node_type_ref: echo });
    await ae.waitFor(1, (r) => r.path === AE_EXECUTE);
    expect((await t.request({ method: 'POST', url: `/v1/runs/${run.run_id}:cancel` })).statusCode).toBe(200);
    const failedCancel = () => warnings().filter((line) => line.msg === 'background work failed');
    await logged((line) => line.msg === 'background work failed');
    expect(failedCancel()[0]).toMatchObject({
      context: `cancel of atomic ${run.root_node_run_id}`,
      runId: run.run_id,
      nodeRunId: run.root_node_run_id,
    });
    expect(JSON.stringify(failedCancel())).not.toContain(new URL(ae.url).host);
  });

  // PostgreSQL keeps finished Runs until retention deletes them; only the memory store evicts.
  it.skipIf(onPostgres)('the eviction of a finished Run from memory', async () => {
    const { logger, warnings } = capture();
    const t = await newApp({ logger, options: { maxFinishedRuns: 1 } });
    const runs = [];
    for (const runId of ['a', 'b']) {
      const started = await t.request({
        method: 'POST',
        url: '/v1/runs',
        payload: {
          run_id: runId,
          root_node_type_ref: { node_type_id: 'composite.x', version: '1' },
          input: {},
        },
      });
      runs.push(started.json() as { run_id: string; root_node_run_id: string });
      expect((await t.request({ method: 'POST', url: `/v1/runs/${runId}:cancel` })).statusCode).toBe(200);
    }
    expect(warnings()).toEqual([
      expect.objectContaining({
        event: 'run_evicted',
        msg: 'finished run evicted from memory',
        runId: 'a',
        nodeRunId: runs[0]!.root_node_run_id,
      }),
    ]);
    expect((await t.request({ method: 'GET', url: '/v1/runs/a' })).statusCode).toBe(404);
  });
});
