/**
 * The Run inspector at `/ui/`: the static files `npm run build` writes to dist/ui (sources in ui/),
 * read once at startup and answered from memory. The set is small and fixed between builds, so a
 * map from path to file is all a static server needs here, and every header is decided in one
 * place: the content type by extension, `immutable` for Vite's content-hashed assets and `no-cache`
 * for the rest (index.html names the current assets), an ETag, and a Content-Security-Policy that
 * allows scripts, styles and requests from this origin only.
 *
 * The files carry no data and a browser cannot attach a bearer token to a navigation, so these routes
 * skip authentication (`authExempt`); the API calls the page makes are authenticated as usual.
 * Without a build the app still starts, and /ui answers 503 saying how to build it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ArpError } from '../errors.js';

export const UI_PREFIX = '/ui';

/** dist/ui beside dist/server.js, and the same directory when the service runs from src/. */
export const DEFAULT_UI_ROOT = fileURLToPath(new URL('../../dist/ui/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
};

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  readonly cacheControl: string;
}

/** Every file under `root`, keyed by its path below /ui/ (`index.html`, `assets/index-3f2a.js`). */
export function readUiFiles(root: string): Map<string, StaticFile> | undefined {
  if (!existsSync(join(root, 'index.html'))) return undefined;
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const name = relative(root, path).split(sep).join('/');
        const body = readFileSync(path);
        files.set(name, {
          body,
          type: CONTENT_TYPES[extname(name)] ?? 'application/octet-stream',
          etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
          // Vite names what it emits under assets/ by content hash: a new build means new names.
          cacheControl: name.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        });
      }
    }
  };
  walk(root);
  return files;
}

export interface UiOptions {
  /** The built inspector; default dist/ui. */
  readonly root?: string;
}

async function ui(app: FastifyInstance, { root = DEFAULT_UI_ROOT }: UiOptions) {
  const files = readUiFiles(root);
  const config = { authExempt: true };

  app.get(UI_PREFIX, { config, schema: { hide: true } }, async (request, reply) => {
    const query = request.url.indexOf('?');
    return reply.redirect(`${UI_PREFIX}/${query < 0 ? '' : request.url.slice(query)}`, 301);
  });

  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!files) {
      throw new ArpError(
        'service_unavailable',
        'The Run inspector is not built: run `npm run build` to build it into dist/ui',
        { retryable: false },
      );
    }
    const name = (request.params as { '*'?: string })['*'] || 'index.html';
    const file = files.get(name);
    if (!file) throw new ArpError('not_found', `No file ${UI_PREFIX}/${name}`);
    reply.headers(SECURITY_HEADERS).header('cache-control', file.cacheControl).header('etag', file.etag);
    if (request.headers['if-none-match'] === file.etag) return reply.code(304).send();
    return reply.type(file.type).send(file.body);
  };
  // `/ui/` too: the wildcard matches it with an empty name.
  app.get(`${UI_PREFIX}/*`, { config, schema: { hide: true } }, serve);
}

export default fp(ui, { name: 'arp-rc-ui' });
