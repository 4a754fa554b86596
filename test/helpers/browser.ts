/**
 * A real browser for the UI tests (test/browser, `npm run test:browser`): Debian's Chromium driven
 * by playwright-core. `RC_CHROMIUM` names another Chromium; screenshots go to `RC_SCREENSHOTS`
 * (default test-results/screenshots), which CI keeps as artifacts.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.RC_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = process.env.RC_SCREENSHOTS ?? 'test-results/screenshots';

export function launchBrowser(): Promise<Browser> {
  // The sandbox needs user namespaces, which containers (and root) often lack.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** Saves a full-page screenshot as `<name>.png` under SCREENSHOTS; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
