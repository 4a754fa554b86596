/**
 * Deadlines longer than a Node timer can hold (2^31-1 ms, about 24.8 days). Node fires such a timer
 * after 1 ms, so a 30-day wall-time budget used to fail its Run at once. vitest's fake timers clamp
 * the same way, which lets these tests move through 30 days without waiting; the coordinator's clock
 * reads the faked `Date`, so both move together.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startRun, type TestApp, untilCommitted, useApp } from '../helpers/app.js';

const newApp = useApp({ clock: { now: () => new Date() } });
const DAY = 86_400_000;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

async function runState(t: TestApp, runId: string) {
  const res = await t.request({ method: 'GET', url: `/v1/runs/${runId}` });
  return res.json() as { state: string; extensions?: Record<string, { code?: string }> };
}

/**
 * The Run once its deadline has fired: the failure is committed in the background (at once in
 * memory, after I/O in a database).
 */
async function expired(t: TestApp, runId: string) {
  await untilCommitted(t, runId, async () => (await runState(t, runId)).state !== 'running');
  return runState(t, runId);
}

describe('wall-time budgets longer than a timer allows', () => {
  it('a 30-day max_wall_time_ms keeps the Run running until 30 days have passed, then fails it', async () => {
    const t = await newApp();
    const run = await startRun(t, { constraints: { budgets: { max_wall_time_ms: 30 * DAY } } });

    const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
    await advance(1);
    expect((await runState(t, run.run_id)).state).toBe('running');
    await advance(29 * DAY);
    expect((await runState(t, run.run_id)).state).toBe('running');
    await advance(DAY - 2);
    expect((await runState(t, run.run_id)).state).toBe('running');
    await advance(1);
    const ended = await expired(t, run.run_id);
    expect(ended.state).toBe('failed');
    expect(ended.extensions?.['rc.completion_error']?.code).toBe('budget_exceeded');
  });

  it('a budget of exactly 2^31-1 ms and one of 2^31 ms are both honoured', async () => {
    const t = await newApp();
    const limit = 2 ** 31 - 1;
    const a = await startRun(t, { constraints: { budgets: { max_wall_time_ms: limit } } });
    const b = await startRun(t, { constraints: { budgets: { max_wall_time_ms: limit + 1 } } });
    await vi.advanceTimersByTimeAsync(limit - 1);
    expect((await runState(t, a.run_id)).state).toBe('running');
    expect((await runState(t, b.run_id)).state).toBe('running');
    await vi.advanceTimersByTimeAsync(1);
    expect((await expired(t, a.run_id)).state).toBe('failed');
    expect((await runState(t, b.run_id)).state).toBe('running');
    await vi.advanceTimersByTimeAsync(1);
    expect((await expired(t, b.run_id)).state).toBe('failed');
  });
});
