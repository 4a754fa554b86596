/**
 * The Run inspector's static files (src/plugins/ui.ts): answered from a build directory with their
 * content types, cache headers, ETags and CSP; unknown files are 404 envelopes; without a build the
 * app still starts and /ui says how to build it; and the files need no token when the API does.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import errorsPlugin from '../../src/plugins/errors.js';
import uiPlugin from '../../src/plugins/ui.js';
import { authFromEnv, requiredEnv, useIssuers } from '../auth/harness.js';
import { useApp } from '../helpers/app.js';

let root: string;
const apps: FastifyInstance[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'rc-ui-'));
  mkdirSync(join(root, 'assets'));
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>Runs</title>');
  writeFileSync(join(root, 'assets/index-Ab12Cd.js'), 'console.log(1)');
  writeFileSync(join(root, 'assets/index-Ef34Gh.css'), 'body{}');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function serve(dir: string): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(errorsPlugin, { logger: undefined });
  await app.register(uiPlugin, { root: dir });
  return app;
}

describe('the inspector files', () => {
  it('redirects /ui to /ui/, keeping the query', async () => {
    const app = await serve(root);
    const res = await app.inject({ url: '/ui?x=1' });
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe('/ui/?x=1');
  });

  it('answers index.html at /ui/, never cached without revalidation, with a strict CSP', async () => {
    const app = await serve(root);
    const res = await app.inject({ url: '/ui/' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<title>Runs</title>');
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers hashed assets as immutable, with their types', async () => {
    const app = await serve(root);
    const js = await app.inject({ url: '/ui/assets/index-Ab12Cd.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const css = await app.inject({ url: '/ui/assets/index-Ef34Gh.css' });
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const app = await serve(root);
    const first = await app.inject({ url: '/ui/index.html' });
    const etag = String(first.headers.etag);
    const again = await app.inject({ url: '/ui/index.html', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
  });

  it('answers unknown files, and paths that climb out, with a 404 envelope', async () => {
    const app = await serve(root);
    for (const url of [
      '/ui/nope.js',
      '/ui/assets/',
      '/ui/..%2Fpackage.json',
      '/ui/assets%2F..%2F..%2Fpackage.json',
    ]) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error.code, url).toBe('not_found');
    }
  });

  it('answers 503 saying to build when there is no build', async () => {
    const app = await serve(join(root, 'missing'));
    const res = await app.inject({ url: '/ui/' });
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatchObject({ code: 'service_unavailable' });
    expect(res.json().error.message).toContain('npm run build');
  });
});

describe('the inspector in the app', () => {
  const newApp = useApp();
  const issuer = useIssuers();

  it('is served without a token while the API requires one', async () => {
    const idp = await issuer();
    const t = await newApp({ options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) } });
    const page = await t.request({ url: '/ui/' });
    // 200 with a build, 503 without one: never 401.
    expect([200, 503]).toContain(page.statusCode);
    expect((await t.request({ url: '/ui' })).statusCode).toBe(301);
    const api = await t.request({ url: '/v1/runs/run_1' });
    expect(api.statusCode).toBe(401);
    const token = await idp.mint();
    const authed = await t.request({ url: '/v1/runs/run_1', headers: { authorization: `Bearer ${token}` } });
    expect(authed.statusCode).toBe(404);
  });

  it('keeps authentication on the API paths next to it', async () => {
    const idp = await issuer();
    const t = await newApp({ options: { auth: authFromEnv(requiredEnv(idp, 'jwks_uri')) } });
    for (const url of ['/uix', '/v1/runs/ui', '/rc/v1/runs']) {
      expect((await t.request({ url })).statusCode, url).toBe(401);
    }
  });
});
