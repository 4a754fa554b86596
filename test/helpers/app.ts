/**
 * Builds the real app for tests, with a deterministic clock and ids, and with every response checked
 * against the contract: `assertNoViolations()` (called in afterEach by `useApp`) fails the test when
 * any response body the test saw did not match its schema. The app's store is the one RC_TEST_STORE
 * selects (see stores.ts) unless the test passes its own.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterEach, expect } from 'vitest';
import { type AppDeps, buildApp, type ContractViolation } from '../../src/app.js';
import type { IdGenerator } from '../../src/core/ids.js';
import { openTestStore } from './stores.js';

export interface TestApp {
  readonly app: FastifyInstance;
  readonly violations: ContractViolation[];
  readonly clock: ManualClock;
  request(options: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** A clock that only moves when told to. */
export class ManualClock {
  #now: number;
  constructor(start = Date.parse('2026-01-01T00:00:00.000Z')) {
    this.#now = start;
  }
  now(): Date {
    return new Date(this.#now);
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

/** Sequential ids: run_1, node_run_1, ... (unique within one app). */
export function sequentialIds(): IdGenerator {
  let runs = 0;
  let nodeRuns = 0;
  return {
    runId: () => `run_${++runs}`,
    nodeRunId: () => `node_run_${++nodeRuns}`,
  };
}

export async function createTestApp(deps: AppDeps = {}): Promise<TestApp> {
  const violations: ContractViolation[] = [];
  const clock = new ManualClock();
  const store = deps.store ?? (await openTestStore(deps.clock ?? clock));
  const app = await buildApp({
    clock,
    ids: sequentialIds(),
    onContractViolation: (violation) => violations.push(violation),
    ...deps,
    ...(store ? { store } : {}),
  });
  return {
    app,
    violations,
    clock,
    request: (options) => app.inject(options),
    close: () => app.close(),
  };
}

/** Registers cleanup that closes every app created in a test and fails on contract violations. */
export function useApp(defaults: AppDeps = {}): (deps?: AppDeps) => Promise<TestApp> {
  const created: TestApp[] = [];
  afterEach(async () => {
    const all = created.splice(0);
    await Promise.all(all.map((t) => t.close()));
    for (const t of all) expect(t.violations, 'responses that broke the contract').toEqual([]);
  });
  return async (deps: AppDeps = {}) => {
    const t = await createTestApp({ ...defaults, ...deps });
    created.push(t);
    return t;
  };
}

export const ref = (node_type_id: string, version = '1.0.0') => ({ node_type_id, version });

/** Starts a Run over HTTP and returns the parsed Run. */
export async function startRun(t: TestApp, body: Record<string, unknown> = {}) {
  const res = await t.request({
    method: 'POST',
    url: '/v1/runs',
    payload: { root_node_type_ref: ref('composite.root'), input: {}, ...body },
  });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { run_id: string; root_node_run_id: string; state: string };
}

/** Creates child NodeRuns over HTTP and returns the raw response. */
export function createChildren(
  t: TestApp,
  runId: string,
  parentId: string,
  specs: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
) {
  return t.request({
    method: 'POST',
    url: '/v1/node-runs',
    payload: { run_id: runId, parent_node_run_id: parentId, node_runs: specs, ...extra },
  });
}

/**
 * Resolves once `check` holds, checking again after every commit that appends events to `runId`
 * (never on a timer): for effects of background work, whose commit a test cannot await, on stores
 * whose commits take I/O.
 */
export async function untilCommitted(
  t: TestApp,
  runId: string,
  check: () => Promise<boolean>,
): Promise<void> {
  let committed = false;
  let wake = () => {};
  const unsubscribe = t.app.coordinator.store.subscribe(runId, () => {
    committed = true;
    wake();
  });
  try {
    for (;;) {
      committed = false;
      if (await check()) return;
      // A commit during the check is not missed: it set `committed`.
      if (!committed) await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    unsubscribe();
  }
}
