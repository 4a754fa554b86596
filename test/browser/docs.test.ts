/**
 * The API explorer at /docs in a real Chromium against the real service: the page carries the
 * project's name and logo, loads the contract from /openapi.json and the listing API from
 * /rc/openapi.json (a second definition in the selector), fetches nothing from elsewhere, and every
 * operation of both documents answers its example with a 2xx on the first click, with nothing filled
 * in by hand. The service generates its own NodeRun ids (not the documented ones), so the NodeRun
 * operations pass only when the explorer carries the ids of earlier answers into later forms. With
 * authentication on, the same holds once a token is given to the Authorize button.
 */
import type { AddressInfo } from 'node:net';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AppDeps } from '../../src/app.js';
import { parseAuthSettings } from '../../src/auth/settings.js';
import { type Contract, loadContract } from '../../src/contract/contract.js';
import { loadListing } from '../../src/contract/listing.js';
import { EXPLORER_PUBLIC_PATHS } from '../../src/plugins/docs.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import { DEFAULT_AUDIENCE, type Issuer, startIssuer } from '../helpers/oidc.js';

const contract = loadContract();
const listing = loadListing(contract);
const LISTING_TITLE = String((listing.document.info as { title: string }).title);

interface Shown {
  readonly operationId: string;
  readonly tag: string;
}

/** Operations in document order; cancel_run last, since it ends the Run the others work on. */
function operationsOf({ document, operations }: Contract): Shown[] {
  const paths = document.paths as Record<string, Record<string, { tags?: string[] }>>;
  const shown = operations.map((op) => ({
    operationId: op.operationId,
    tag: paths[op.path]?.[op.method.toLowerCase()]?.tags?.[0] ?? 'default',
  }));
  return [
    ...shown.filter((op) => op.operationId !== 'cancel_run'),
    ...shown.filter((op) => op.operationId === 'cancel_run'),
  ];
}

async function answerOf(block: Locator): Promise<string> {
  const shown = block.locator('.live-responses-table .response-col_description pre').first();
  return ((await shown.textContent()) ?? '').replace(/\s+/g, ' ');
}

/** Expands the operation, executes what the explorer prefilled, and collapses it again. */
async function execute(page: Page, { operationId, tag }: Shown): Promise<string | undefined> {
  const block = page.locator(`#operations-${tag}-${operationId}`);
  const summary = block.locator('.opblock-summary').first();
  await summary.click();
  const tryOut = block.locator('.try-out__btn');
  const run = block.locator('button.execute');
  await run.or(tryOut).first().waitFor();
  if ((await run.count()) === 0) await tryOut.click();
  await run.click();
  const status = block.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor();
  const code = ((await status.textContent()) ?? '').trim();
  const failure = /^2\d\d$/.test(code) ? undefined : `${operationId}: ${code} ${await answerOf(block)}`;
  // Collapsed, the page stays short and the next operation's summary stays in view.
  await summary.click();
  return failure;
}

/** Every operation of the contract, then of the listing API; the operations that did not get a 2xx. */
async function executeAll(page: Page): Promise<string[]> {
  const failures: string[] = [];
  await page.locator('#operations-runs-start_run').waitFor();
  for (const operation of operationsOf(contract)) {
    const failure = await execute(page, operation);
    if (failure) failures.push(failure);
  }
  await page.locator('.download-url-wrapper select').selectOption({ label: LISTING_TITLE });
  await page.locator('#operations-listing-list_runs').waitFor();
  for (const operation of operationsOf(listing)) {
    const failure = await execute(page, operation);
    if (failure) failures.push(failure);
  }
  return failures;
}

describe('API explorer at /docs', () => {
  let browser: Browser;
  const apps: TestApp[] = [];
  const issuers: Issuer[] = [];

  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.close()));
    await Promise.all(issuers.splice(0).map((idp) => idp.close()));
  });
  afterAll(async () => {
    await browser?.close();
  });

  /** The real app on a loopback port, and a page on which every request is recorded. */
  async function open(deps: AppDeps = {}) {
    const t = await createTestApp(deps);
    apps.push(t);
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(`${base}/docs`);
    const paths = () => requested.map((url) => (url.startsWith(base) ? url.slice(base.length) : url));
    return { t, page, paths };
  }

  it('executes every operation of the contract and the listing API with its example, each 2xx', async () => {
    const { t, page, paths } = await open();

    await expect.poll(() => page.title()).toBe('ARP Run Coordinator — API');
    const logo = page.locator('.topbar-wrapper a.link img');
    await logo.waitFor();
    expect(await logo.getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(await page.locator('link[rel="icon"]').getAttribute('href')).toBe(
      '/docs/static/theme/favicon.svg',
    );
    const selector = page.locator('.download-url-wrapper select option');
    expect(await selector.allTextContents()).toEqual(['ARP Run Coordinator (ARP spec/v1)', LISTING_TITLE]);
    await page.locator('#operations-runs-start_run').waitFor();
    await screenshot(page, 'docs');

    expect(await executeAll(page)).toEqual([]);
    await screenshot(page, 'docs-listing-executed');

    expect(t.violations, 'answers that broke the contract').toEqual([]);
    const loaded = paths();
    expect(
      loaded.filter((url) => !url.startsWith('/') && !url.startsWith('data:')),
      'requests elsewhere',
    ).toEqual([]);
    expect(loaded).toContain('/openapi.json');
    expect(loaded).toContain('/rc/openapi.json');
    expect(loaded).not.toContain('/docs/json');
    await page.close();
  });

  it('carries answered ids into forms already shown, but not over a value typed by hand', async () => {
    const { page } = await open();
    const show = async (id: string) => {
      const block = page.locator(id);
      await block.locator('.opblock-summary').first().click();
      const input = block.locator('.parameters input').first();
      await input.waitFor();
      return input;
    };
    const nodeRun = await show('#operations-node_runs-get_node_run');
    const documented = await nodeRun.inputValue();
    expect(documented).toMatch(/^node_run_[0-9a-f]{32}$/);
    const events = await show('#operations-node_runs-stream_node_run_events');
    await events.fill('node_run_typed_by_hand');

    for (const operationId of ['start_run', 'create_node_runs']) {
      const tag = operationId === 'start_run' ? 'runs' : 'node_runs';
      expect(await execute(page, { operationId, tag })).toBeUndefined();
    }
    // The test app numbers NodeRuns: node_run_1 is the root, node_run_2 the first child.
    await expect.poll(() => nodeRun.inputValue()).toBe('node_run_2');
    expect(await events.inputValue()).toBe('node_run_typed_by_hand');
    await page.close();
  });

  it('with authentication on, the explorer is usable once a token is given to Authorize', async () => {
    const idp = await startIssuer();
    issuers.push(idp);
    const problems: string[] = [];
    const auth = parseAuthSettings(
      {
        ARP_AUTH_MODE: 'required',
        ARP_AUTH_JWKS_URI: idp.jwksUri,
        ARP_AUTH_ISSUER: idp.issuer,
        ARP_AUTH_AUDIENCE: DEFAULT_AUDIENCE,
        ARP_AUTH_EXEMPT_PATHS: EXPLORER_PUBLIC_PATHS.join(','),
      },
      problems,
    );
    expect(problems).toEqual([]);
    const { t, page, paths } = await open({ options: { auth } });
    await page.locator('#operations-runs-start_run').waitFor();

    // Without a token the operations are refused; the page itself loaded from the exempt paths.
    const refused = await execute(page, { operationId: 'get_run', tag: 'runs' });
    expect(refused).toMatch(/^get_run: 401 /);

    await page.locator('.auth-wrapper .btn.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog
      .locator('input')
      .first()
      .fill(await idp.mint());
    await dialog.locator('.auth-btn-wrapper .btn.authorize').click();
    await dialog.locator('.auth-btn-wrapper .btn-done').click();

    expect(await executeAll(page)).toEqual([]);
    expect(t.violations, 'answers that broke the contract').toEqual([]);
    const denied = paths().filter(
      (url) => url.startsWith('/docs') && !EXPLORER_PUBLIC_PATHS.includes(url as never),
    );
    expect(denied, 'explorer files outside EXPLORER_PUBLIC_PATHS').toEqual([]);
    await page.close();
  });
});
