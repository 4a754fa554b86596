/**
 * The Run inspector (/ui) in a real Chromium against the real app, listening on loopback, with
 * loopback executors: a Composite Executor fake that decomposes the root through the public API
 * with its assignment token, and an Atomic Executor fake whose answers the test releases one by
 * one (`Gates`), so the tree changes step by step while the page is open. Every wait is on the page
 * (a locator appearing) or on a request arriving, never on a clock. Screenshots of the list and Run
 * pages, at 1280 px and at phone width, go to test-results/screenshots (CI artifacts).
 *
 * The inspector must be built (dist/ui): `npm run build` does it; when it is missing this suite
 * builds it first.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/coordinator/ports.js';
import type { CompositeBeginRequest, NodeRunsCreateResponse, RunEvent } from '../../src/gen/contract.js';
import { authFromEnv, requiredEnv, useIssuers } from '../auth/harness.js';
import { AE_EXECUTE, CE_BEGIN, startRun, useDispatch } from '../dispatch/harness.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import {
  callJson,
  deferred,
  type FakeService,
  freePort,
  Gates,
  type Reply,
  replies,
} from '../helpers/executors.js';
import { openStream } from '../helpers/ndjson.js';
import { PROJECT_ROOT } from '../helpers/paths.js';

const h = useDispatch();
const issuer = useIssuers();

const plan = { node_type_id: 'composite.plan', version: '1.0.0' };
const echo = { node_type_id: 'atomic.echo', version: '1.0.0' };
const isExecute = (r: { method: string; path: string }) => r.method === 'POST' && r.path === AE_EXECUTE;

let browser: Browser;
const contexts: BrowserContext[] = [];
/** Console errors and uncaught exceptions of the pages (a CSP violation is a console error). */
const pageErrors: string[] = [];
/** Console errors a test causes on purpose (cleared after each test). */
const expectedErrors: RegExp[] = [];

beforeAll(async () => {
  if (!existsSync(path.join(PROJECT_ROOT, 'dist/ui/index.html'))) {
    execFileSync(
      process.execPath,
      [path.join(PROJECT_ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'ui'],
      {
        cwd: PROJECT_ROOT,
        stdio: 'inherit',
      },
    );
  }
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});
// Registered after useDispatch's, so it runs first: pages close before the apps they talk to.
afterEach(async () => {
  await Promise.all(contexts.splice(0).map((context) => context.close()));
  const errors = pageErrors
    .splice(0)
    .filter((error) => !expectedErrors.some((pattern) => pattern.test(error)));
  expectedErrors.length = 0;
  expect(errors, 'errors in the page').toEqual([]);
});

async function newPage(width: number, height = 900): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height } });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (error) => pageErrors.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    // A 401 the page answers with its token form is expected; anything else is a failure.
    if (message.type() === 'error' && !/status of 401/.test(message.text())) pageErrors.push(message.text());
  });
  return page;
}

/** The real app on 127.0.0.1 with the real clock (durations), its public URL known before it is built. */
async function listeningApp(services: { atomicExecutor?: string; compositeExecutor?: string }) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t = await h.app({ services, publicUrl: base }, { clock: systemClock });
  await t.app.listen({ port, host: '127.0.0.1' });
  return { t, base };
}

/** An Atomic Executor whose answer for each NodeRun waits until the test releases it. */
async function gatedAtomicExecutor(): Promise<{ ae: FakeService; gates: Gates<Reply> }> {
  const gates = new Gates<Reply>();
  const ae = await h.fake();
  ae.on('POST', AE_EXECUTE, (r) => gates.wait((r.body as { node_run_id: string }).node_run_id));
  ae.on('POST', /^\/v1\/atomic-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  return { ae, gates };
}

/** A Composite Executor that accepts every begin and then runs `work` against the coordinator. */
async function compositeExecutor(
  work: (begin: CompositeBeginRequest) => Promise<void>,
): Promise<FakeService> {
  const ce = await h.fake();
  ce.on('POST', CE_BEGIN, (r) => ({
    json: { accepted: true },
    // A Run canceled under the executor ends its work with an error; the test checks the page.
    after: () => void h.track(work(r.body as CompositeBeginRequest)).catch(() => {}),
  }));
  ce.on('POST', /^\/v1\/composite-node-runs\/[^/]+:cancel$/, () => ({ status: 200, json: {} }));
  return ce;
}

/** create_node_runs as a composite executor calls it, with its assignment token. */
async function createChildren(begin: CompositeBeginRequest, specs: Record<string, unknown>[]) {
  const res = await callJson(begin.coordinator_endpoint, '/v1/node-runs', {
    method: 'POST',
    token: begin.assignment_token,
    body: { run_id: begin.run_id, parent_node_run_id: begin.node_run_id, node_runs: specs },
  });
  if (res.status !== 200) throw new Error(`create_node_runs answered ${res.status}: ${res.text}`);
  return (res.body as NodeRunsCreateResponse).node_runs;
}

/** Follows the composite's events until `count` of its children have their executor's result. */
async function untilExecuted(begin: CompositeBeginRequest, count: number): Promise<void> {
  const stream = await openStream(
    begin.coordinator_endpoint,
    `/v1/node-runs/${begin.node_run_id}/events?follow=true`,
  );
  try {
    let executed = 0;
    for (let line = await stream.lines.next(); line !== undefined; line = await stream.lines.next()) {
      if ((JSON.parse(line) as RunEvent).type === 'atomic_executed' && ++executed === count) return;
    }
    throw new Error('the stream ended before the children were executed');
  } finally {
    stream.destroy();
  }
}

/**
 * What axe-core (the accessibility engine) finds against WCAG 2.1 A and AA on the page as it is,
 * contrast included: `rule: elements` per violation. Evaluated through the DevTools protocol, which
 * the page's CSP does not apply to.
 */
async function accessibilityViolations(page: Page): Promise<string[]> {
  axeSource ??= readFileSync(path.join(PROJECT_ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  return page.evaluate(`axe
    .run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
    .then((result) => result.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', ')))`);
}
let axeSource: string | undefined;

const nodeItem = (page: Page, id: string) => page.locator(`.tree li[data-node-id="${id}"]`);
const nodeInState = (page: Page, id: string, state: string) =>
  page.locator(`.tree li[data-node-id="${id}"][data-state="${state}"]`).waitFor();
const runInState = (page: Page, state: string) =>
  page.locator(`.run-state [data-state="${state}"]`).waitFor();

describe('the Run inspector', () => {
  it('lists a Run started through the API, and its tree fills in live as NodeRuns complete', async () => {
    const { ae, gates } = await gatedAtomicExecutor();
    const decompose = deferred();
    const ce = await compositeExecutor(async (begin) => {
      await decompose.promise;
      await createChildren(begin, [
        { node_type_ref: echo, inputs: { text: 'first' } },
        { node_type_ref: echo, inputs: { text: 'second' } },
      ]);
      await untilExecuted(begin, 2);
      const complete = await callJson(
        begin.coordinator_endpoint,
        `/v1/node-runs/${begin.node_run_id}:complete`,
        {
          method: 'POST',
          token: begin.assignment_token,
          body: { state: 'succeeded', outputs: { poem: 'first, second' } },
        },
      );
      if (complete.status !== 204) throw new Error(`complete answered ${complete.status}`);
    });
    const { t, base } = await listeningApp({ atomicExecutor: ae.url, compositeExecutor: ce.url });
    const run = await startRun(t, {
      root_node_type_ref: plan,
      input: { goal: 'a poem' },
      run_context: { tenant_id: 'tenant-a' },
      constraints: { structural: { max_depth: 2 }, budgets: { max_steps: 10 } },
    });
    const root = run.root_node_run_id;

    // The list: the Run, its state, the counts; the filters narrow it.
    const page = await newPage(1280);
    await page.goto(`${base}/ui/`);
    const row = page.locator(`tr[data-run-id="${run.run_id}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('composite.plan');
    expect(await row.textContent()).toContain('tenant-a');
    await page.locator('[data-count="total"]', { hasText: '1' }).waitFor();
    await page.getByLabel('Tenant').fill('tenant-b');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByText('No Runs match these filters.').waitFor();
    await page.getByLabel('Tenant').fill('tenant-a');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await row.waitFor();
    await screenshot(page, 'ui-runs-list-1280');
    expect(await accessibilityViolations(page), 'the list page').toEqual([]);

    // The Run page: the root alone, running at the composite executor, following events live.
    await page.getByRole('link', { name: run.run_id }).click();
    await nodeInState(page, root, 'running');
    await page.getByText('Live: following the Run’s events.').waitFor();
    expect(await page.locator('.tree li').count()).toBe(1);
    // The root's details: its executor binding and the coordinator's bookkeeping.
    await page.locator('.detail', { hasText: 'Executor binding' }).waitFor();
    await page.locator('.detail .rc-keys', { hasText: 'rc.constraints' }).waitFor();

    // The stream drops (a proxy, a restart): the page opens it again after the last event it saw.
    // Nothing happens meanwhile (the executor waits to decompose), so the log holds still.
    const logged = (await callJson(base, `/v1/runs/${run.run_id}/events`)).text.trim().split('\n').length;
    await page.locator(`.events tbody tr[data-seq="${logged}"]`).waitFor();
    const seen = await page.locator('.events tbody tr').count();
    expect(seen).toBe(logged);
    expectedErrors.push(/ERR_INCOMPLETE_CHUNKED_ENCODING/);
    const reopened = page.waitForRequest((request) => request.url().includes(`after_seq=${seen}`));
    t.app.server.closeAllConnections();
    await reopened;
    await page.getByText('Live: following the Run’s events.').waitFor();

    // The executor decomposes: both children appear without a reload, running at the atomic executor.
    decompose.resolve();
    const executes = await ae.waitFor(2, isExecute);
    const [first, second] = executes.map((r) => (r.body as { node_run_id: string }).node_run_id) as [
      string,
      string,
    ];
    await nodeInState(page, first, 'running');
    await nodeInState(page, second, 'running');
    await page.locator('.events tr', { hasText: 'composite_decomposed' }).waitFor();

    // One result at a time: the page shows each as it is recorded.
    gates.release(first, replies.succeeded(first, { text: 'first' }));
    await nodeInState(page, first, 'succeeded');
    expect(await nodeItem(page, second).getAttribute('data-state')).toBe('running');
    expect(await nodeItem(page, root).getAttribute('data-state')).toBe('running');

    // Keyboard: Tab from the Refresh button reaches the tree's buttons; Enter opens a NodeRun.
    await page.getByRole('button', { name: 'Refresh' }).focus();
    let focused: { role?: string; id?: string } = {};
    for (let presses = 0; presses < 10 && !(focused.role === 'node' && focused.id === first); presses++) {
      await page.keyboard.press('Tab');
      const active = page.locator(':focus');
      focused = {
        role: (await active.getAttribute('data-role')) ?? undefined,
        id: (await active.getAttribute('data-node-id')) ?? undefined,
      };
    }
    expect(focused).toEqual({ role: 'node', id: first });
    await page.keyboard.press('Enter');
    await page.locator('.detail .detail-title', { hasText: first }).waitFor();
    expect(await page.locator('.detail').textContent()).toContain('"text": "first"');
    // Mid-flight: one child done, one running, the root waiting on it.
    await screenshot(page, 'ui-run-page-live-1280');

    gates.release(second, replies.succeeded(second, { text: 'second' }));
    await nodeInState(page, second, 'succeeded');
    await nodeInState(page, root, 'succeeded');
    await runInState(page, 'succeeded');
    await page.getByText('The Run is finished; all its events are shown.').waitFor();
    await page.locator('.events tr', { hasText: 'run_completed' }).waitFor();
    expect(await page.getByRole('button', { name: 'Cancel run' }).isDisabled()).toBe(true);
    // Every event once, in order, across the reconnection.
    const seqs = await page
      .locator('.events tbody tr')
      .evaluateAll((rows) => rows.map((row) => Number(row.getAttribute('data-seq'))));
    expect(seqs).toEqual(seqs.map((_, index) => index + 1));

    // Collapsing hides the children; the root's toggle says so, and Enter on it shows them again.
    const rootToggle = page.locator(`.tree button[data-role="toggle"][data-node-id="${root}"]`);
    await page.getByRole('button', { name: 'Collapse all' }).click();
    await nodeItem(page, first).waitFor({ state: 'detached' });
    expect(await rootToggle.getAttribute('aria-expanded')).toBe('false');
    await rootToggle.press('Enter');
    await nodeItem(page, first).waitFor();
    expect(await rootToggle.getAttribute('aria-expanded')).toBe('true');

    await page.locator(`.tree button[data-role="node"][data-node-id="${root}"]`).click();
    await page.locator('.detail .detail-title', { hasText: root }).waitFor();
    await screenshot(page, 'ui-run-page-1280');
    expect(await accessibilityViolations(page), 'the Run page').toEqual([]);
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'ui-run-page-phone');
    expect(await accessibilityViolations(page), 'the Run page on a phone').toEqual([]);
  });

  it('cancels a running Run from its page', async () => {
    const { ae } = await gatedAtomicExecutor();
    const ce = await compositeExecutor(async (begin) => {
      await createChildren(begin, [{ node_type_ref: echo, inputs: { text: 'never answered' } }]);
      await untilExecuted(begin, 1);
    });
    const { t, base } = await listeningApp({ atomicExecutor: ae.url, compositeExecutor: ce.url });
    const run = await startRun(t, { root_node_type_ref: plan, input: {} });
    const [execute] = await ae.waitFor(1, isExecute);
    const child = (execute!.body as { node_run_id: string }).node_run_id;

    const page = await newPage(1280);
    await page.goto(`${base}/ui/#/runs/${encodeURIComponent(run.run_id)}`);
    await nodeInState(page, child, 'running');
    await runInState(page, 'running');
    const cancel = page.getByRole('button', { name: 'Cancel run' });
    expect(await cancel.isEnabled()).toBe(true);
    page.once('dialog', (dialog) => void dialog.accept());
    await cancel.click();
    await runInState(page, 'canceled');
    await nodeInState(page, child, 'canceled');
    await nodeInState(page, run.root_node_run_id, 'canceled');
    expect(await cancel.isDisabled()).toBe(true);
    await page.locator('.events tr', { hasText: 'run_completed' }).waitFor();
    // From the timeline to the child's details: the coordinator's reason for ending it.
    await page.locator('.events button', { hasText: child }).first().click();
    await page.locator('.detail .detail-title', { hasText: child }).waitFor();
    await page.locator('.detail .notice-error', { hasText: 'run_canceled' }).waitFor();
    expect(await page.locator('.detail .rc-keys').textContent()).toContain('rc.completion_error');
    const after = await callJson(base, `/v1/runs/${run.run_id}`);
    expect((after.body as { state: string }).state).toBe('canceled');
  });

  it('asks for a token when the coordinator requires one, and works once given one', async () => {
    const idp = await issuer();
    const t = await h.app(
      {},
      { clock: systemClock, options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) } },
    );
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const token = await idp.mint();
    const started = await t.request({
      method: 'POST',
      url: '/v1/runs',
      headers: { authorization: `Bearer ${token}` },
      payload: { root_node_type_ref: plan, input: {} },
    });
    expect(started.statusCode).toBe(200);
    const run = started.json() as { run_id: string; root_node_run_id: string };

    const page = await newPage(390, 844);
    await page.goto(`${address}/ui/`);
    const field = page.getByLabel('Bearer token');
    await field.waitFor();
    expect(await accessibilityViolations(page), 'the token form').toEqual([]);
    await field.fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator(`tr[data-run-id="${run.run_id}"]`).waitFor();
    await screenshot(page, 'ui-runs-list-phone');
    expect(await page.evaluate('[sessionStorage.length, localStorage.length]')).toEqual([1, 0]);

    await page.getByRole('link', { name: run.run_id }).click();
    await nodeInState(page, run.root_node_run_id, 'queued');

    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByLabel('Bearer token').waitFor();
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
  });
});
