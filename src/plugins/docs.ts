/**
 * The contract document at `/openapi.json`, the listing API's at `/rc/openapi.json`, and the API
 * explorer at `/docs`: swagger-ui with both documents in its definition selector (the contract
 * first), Try-it-out on, the project's own title, logo and favicon, and the explorer plugin that
 * carries the ids the service answers with into the examples that follow (src/docs/explorer.ts).
 * Every file the page loads is served here; nothing comes from elsewhere.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Contract } from '../contract/contract.js';
import { EXPLORER_TITLE, FAVICON_SVG, LOGO_SVG, THEME_CSS } from '../docs/branding.js';
import { carryExampleIds } from '../docs/explorer.js';

export const CONTRACT_DOCUMENT_PATH = '/openapi.json';
export const LISTING_DOCUMENT_PATH = '/rc/openapi.json';
export const EXPLORER_PATH = '/docs';
const THEME_FILE = 'theme.css';
const FAVICON_FILE = 'favicon.svg';

/**
 * What a browser loads for the explorer, before it can send a token: with authentication on, these
 * are the paths to list in ARP_AUTH_EXEMPT_PATHS (exact paths) to use /docs; the operations
 * themselves then take the token given to the explorer's Authorize button.
 */
export const EXPLORER_PUBLIC_PATHS = [
  EXPLORER_PATH,
  ...[
    'swagger-ui.css',
    'index.css',
    'swagger-ui-bundle.js',
    'swagger-ui-standalone-preset.js',
    'swagger-initializer.js',
    `theme/${THEME_FILE}`,
    `theme/${FAVICON_FILE}`,
  ].map((file) => `${EXPLORER_PATH}/static/${file}`),
  CONTRACT_DOCUMENT_PATH,
  LISTING_DOCUMENT_PATH,
] as const;

export interface DocsOptions {
  readonly contract: Contract;
  readonly listing: Contract;
}

// swagger-ui's own definition download, which a `plugins` list given in uiConfig replaces.
declare const SwaggerUIBundle: { plugins: { DownloadUrl(system: unknown): unknown } };
function downloadUrl(system: unknown) {
  return SwaggerUIBundle.plugins.DownloadUrl(system);
}

async function docs(app: FastifyInstance, { contract, listing }: DocsOptions) {
  // @fastify/swagger-ui needs @fastify/swagger beside it; the documents are served below.
  await app.register(swagger, { mode: 'static', specification: { document: contract.document as never } });
  await app.register(swaggerUi, {
    routePrefix: EXPLORER_PATH,
    logo: { type: 'image/svg+xml', content: LOGO_SVG, href: EXPLORER_PATH, target: '_self' },
    theme: {
      title: EXPLORER_TITLE,
      favicon: [
        { filename: FAVICON_FILE, rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: FAVICON_SVG },
      ],
      css: [{ filename: THEME_FILE, content: THEME_CSS }],
    },
    uiConfig: {
      // With `urls` swagger-ui loads the selected definition, not the plugin's own `/docs/json`.
      urls: [
        { url: CONTRACT_DOCUMENT_PATH, name: `${String(infoOf(contract).title)} (ARP spec/v1)` },
        { url: LISTING_DOCUMENT_PATH, name: String(infoOf(listing).title) },
      ],
      tryItOutEnabled: true,
      // The token given to Authorize stays when the other definition is selected (and across
      // reloads, in this origin's localStorage, until Logout).
      persistAuthorization: true,
      displayOperationId: true,
      displayRequestDuration: true,
      plugins: [forPage(downloadUrl), forPage(carryExampleIds)] as never,
    },
  });
  for (const [path, document] of [
    [CONTRACT_DOCUMENT_PATH, contract.document],
    [LISTING_DOCUMENT_PATH, listing.document],
  ] as const) {
    const json = JSON.stringify(document);
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(json),
    );
  }
}

/**
 * `fn` as it is to be written into the page: @fastify/swagger-ui writes the functions of `uiConfig`
 * as their source text. Run under tsx (`npm run dev`), that text calls esbuild's `__name` helper,
 * which the page lacks, so the page gets its own.
 */
function forPage<T extends (...args: never[]) => unknown>(fn: T): T {
  const source = `(function () { var __name = function (f) { return f; }; return ${fn.toString()}; })()`;
  return Object.assign((...args: Parameters<T>) => fn(...args), { toString: () => source }) as unknown as T;
}

function infoOf(contract: Contract): Record<string, unknown> {
  return (contract.document.info ?? {}) as Record<string, unknown>;
}

export default fp(docs, { name: 'arp-rc-docs' });
