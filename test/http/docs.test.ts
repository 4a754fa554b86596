/**
 * The explorer's page as served (Node only; test/browser/docs.test.ts drives it in Chromium): the
 * project's title and favicon, swagger-ui pointed at /openapi.json then /rc/openapi.json with
 * Try-it-out on, no address outside the service in what the page loads first, and every path in
 * EXPLORER_PUBLIC_PATHS served, also when authentication is required and those paths are exempt.
 */
import { describe, expect, it } from 'vitest';
import { parseAuthSettings } from '../../src/auth/settings.js';
import { EXPLORER_PUBLIC_PATHS } from '../../src/plugins/docs.js';
import { useApp } from '../helpers/app.js';

const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';

describe('API explorer page', () => {
  const createApp = useApp();

  it("carries the project's title and favicon and loads only the service's own files", async () => {
    const t = await createApp();
    const page = await t.request({ method: 'GET', url: '/docs' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>ARP Run Coordinator — API</title>');
    expect(page.body).toContain('href="/docs/static/theme/favicon.svg"');
    expect(page.body).not.toContain('favicon-32x32.png');
    const loaded = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(loaded.length).toBeGreaterThan(0);
    for (const url of loaded) expect(url, url).toMatch(/^\/docs\/static\//);

    const initializer = await t.request({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(initializer.body).toContain(
      '"urls":[{"url":"/openapi.json","name":"ARP Run Coordinator (ARP spec/v1)"},' +
        '{"url":"/rc/openapi.json","name":"ARP Run Coordinator listing API"}]',
    );
    expect(initializer.body).toContain('"tryItOutEnabled":true');
    expect(initializer.body).toContain('function carryExampleIds(');
    // Comments (swagger-ui's own cite a web page) and the SVG namespace are not requests.
    const code = initializer.body.replace(/\/\/ .*$/gm, '').replaceAll(SVG_NAMESPACE, '');
    const addresses = code.match(/https?:\/\/[^\s"'`)]+/g);
    expect(addresses, 'addresses outside the service').toBeNull();
  });

  it('serves every explorer path without a token when they are exempt from required authentication', async () => {
    const problems: string[] = [];
    const auth = parseAuthSettings(
      {
        ARP_AUTH_MODE: 'required',
        ARP_AUTH_JWKS_URI: 'http://127.0.0.1:9/jwks.json',
        ARP_AUTH_EXEMPT_PATHS: EXPLORER_PUBLIC_PATHS.join(','),
      },
      problems,
    );
    expect(problems).toEqual([]);
    const t = await createApp({ options: { auth } });
    for (const url of EXPLORER_PUBLIC_PATHS) {
      const res = await t.request({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
    const operation = await t.request({ method: 'GET', url: '/v1/runs/run_example_trip_lisbon' });
    expect(operation.statusCode).toBe(401);
  });
});
