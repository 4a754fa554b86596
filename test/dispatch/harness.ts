/**
 * The real app wired to loopback fake services, for dispatch tests. `useDispatch()` registers one
 * afterEach that tears everything down in the right order — apps first (their outgoing calls are
 * aborted and their event streams end), then the background work of fake peers, then the undici
 * agents and the fake servers — and fails the test on any response that broke the contract.
 */
import { Agent } from 'undici';
import { afterEach, expect } from 'vitest';
import type { AppDeps } from '../../src/app.js';
import type { Dispatcher } from '../../src/coordinator/dispatcher.js';
import type { Timers } from '../../src/coordinator/ports.js';
import { defaultOrchestration, type OrchestrationOptions } from '../../src/coordinator/wiring.js';
import type { RunEvent } from '../../src/core/model.js';
import type { NodeRun, Run } from '../../src/gen/contract.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { type FakeService, startFake } from '../helpers/executors.js';
import { contractValidators, parseEvents } from '../helpers/ndjson.js';

export interface DispatchHarness {
  /** A fake service, closed after the test. */
  fake(): Promise<FakeService>;
  /**
   * The real app with `orchestration` on top of the defaults, instant retries (`retries` extra
   * attempts, default 0), its own undici agent, and `deps` passed through.
   */
  app(orchestration: Partial<OrchestrationOptions>, deps?: AppDeps & { retries?: number }): Promise<TestApp>;
  /** Background work (e.g. a fake composite executor calling back) awaited before servers close. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Errors the apps reported from background work. */
  readonly backgroundErrors: { error: unknown; context: string }[];
}

export function useDispatch(): DispatchHarness {
  let apps: TestApp[] = [];
  let fakes: FakeService[] = [];
  let agents: Agent[] = [];
  let work: Promise<unknown>[] = [];
  const backgroundErrors: { error: unknown; context: string }[] = [];

  afterEach(async () => {
    const [a, f, g, w] = [apps, fakes, agents, work];
    apps = [];
    fakes = [];
    agents = [];
    work = [];
    backgroundErrors.length = 0;
    await Promise.all(a.map((t) => t.close()));
    await Promise.allSettled(w);
    await Promise.all(g.map((agent) => agent.destroy()));
    await Promise.all(f.map((fake) => fake.close()));
    for (const t of a) expect(t.violations, 'responses that broke the contract').toEqual([]);
  });

  return {
    backgroundErrors,
    async fake() {
      const fake = await startFake();
      fakes.push(fake);
      return fake;
    },
    async app(orchestration, deps = {}) {
      const { retries = 0, ...rest } = deps;
      const agent = new Agent();
      agents.push(agent);
      const t = await createTestApp({
        httpDispatcher: agent,
        retry: { retries, backoff: () => 0 },
        onBackgroundError: (error, context) => backgroundErrors.push({ error, context }),
        ...rest,
        options: { ...rest.options, orchestration: { ...defaultOrchestration, ...orchestration } },
      });
      apps.push(t);
      return t;
    },
    track(promise) {
      work.push(promise);
      return promise;
    },
  };
}

export const dispatcherOf = (t: TestApp): Dispatcher => t.app.coordinator.execution as Dispatcher;

/** Waits until nothing is queued or being dispatched. */
export const idle = (t: TestApp): Promise<void> => dispatcherOf(t).idle();

export async function getRun(t: TestApp, runId: string): Promise<Run> {
  const res = await t.request({ method: 'GET', url: `/v1/runs/${runId}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Run;
}

export async function getNodeRun(t: TestApp, nodeRunId: string): Promise<NodeRun> {
  const res = await t.request({ method: 'GET', url: `/v1/node-runs/${nodeRunId}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as NodeRun;
}

/** Every event of a Run (snapshot), each checked against the RunEvent schema. */
export async function runEvents(t: TestApp, runId: string): Promise<RunEvent[]> {
  const res = await t.request({ method: 'GET', url: `/v1/runs/${runId}/events` });
  expect(res.statusCode, res.body).toBe(200);
  return parseEvents(res.body.split('\n').filter(Boolean));
}

/** `type` for most events, `policy_decided(<action>)` for policy decisions. */
export const eventLabels = (events: readonly RunEvent[]): string[] =>
  events.map((e) => (e.type === 'policy_decided' ? `policy_decided(${String(e.data?.action)})` : e.type));

/** The coordinator's error recorded on a NodeRun or Run. */
export const completionError = (object: { extensions?: Record<string, unknown> }) =>
  object.extensions?.['rc.completion_error'] as
    | { code: string; message: string; details?: Record<string, unknown> }
    | undefined;

export async function startRun(t: TestApp, body: Record<string, unknown>) {
  const res = await t.request({ method: 'POST', url: '/v1/runs', payload: { input: {}, ...body } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Run;
}

export async function cancelRun(t: TestApp, runId: string): Promise<Run> {
  const res = await t.request({ method: 'POST', url: `/v1/runs/${runId}:cancel` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Run;
}

/** Schema errors of `value` against a contract component (empty when it validates). */
export const schemaErrors = (component: string, value: unknown) =>
  contractValidators().validate(component, value);

export const AE_EXECUTE = '/v1/atomic-node-runs:execute';
export const CE_BEGIN = '/v1/composite-node-runs:begin';
export const PDP_DECIDE = '/v1/policy:decide';
export const aeCancelPath = (id: string) => `/v1/atomic-node-runs/${id}:cancel`;
export const ceCancelPath = (id: string) => `/v1/composite-node-runs/${id}:cancel`;

/** Timers that only fire when the test says so. */
export class ManualTimers implements Timers {
  readonly pending = new Map<number, { callback: () => void; ms: number }>();
  #next = 0;
  setTimeout(callback: () => void, ms: number): unknown {
    this.#next += 1;
    this.pending.set(this.#next, { callback, ms });
    return this.#next;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    const due = [...this.pending.entries()];
    this.pending.clear();
    for (const [, timer] of due) timer.callback();
  }
}
