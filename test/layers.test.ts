/**
 * Imports run one way: from the HTTP edge down to the core. A lower layer never imports a higher
 * one, so each can be read, tested and replaced on its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = new URL('../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

/** `src/<layer>/...` imports of each file, as layer names. */
function importedLayers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const layers: string[] = [];
  for (const [, path] of text.matchAll(/from '(\.[^']+)'/g)) {
    const target = relative(src, join(file, '..', path!));
    if (!target.startsWith('..')) layers.push(target.split('/')[0]!.replace(/\.js$/, ''));
  }
  return layers;
}

/** Which layers each layer must not import. */
const FORBIDDEN: Record<string, string[]> = {
  core: ['coordinator', 'store', 'events', 'http', 'routes', 'auth', 'clients', 'app', 'server'],
  store: ['coordinator', 'events', 'http', 'routes', 'auth', 'app', 'server'],
  events: ['coordinator', 'http', 'routes', 'auth', 'app', 'server'],
  auth: ['coordinator', 'events', 'routes', 'app', 'server'],
  clients: ['coordinator', 'store', 'events', 'routes', 'auth', 'app', 'server'],
  coordinator: ['events', 'http', 'routes', 'app', 'server'],
};

/** The CLI is a client of the service's HTTP API: it may use the contract's types, nothing else of src/. */
const CLIENT_ONLY: Record<string, string[]> = { cli: ['cli', 'gen'] };

describe('layers', () => {
  it('no layer imports one above it', () => {
    const violations: string[] = [];
    for (const file of files(src)) {
      const layer = relative(src, file).split('/')[0]!;
      for (const imported of importedLayers(file)) {
        const forbidden = FORBIDDEN[layer]?.includes(imported);
        const outside = CLIENT_ONLY[layer] !== undefined && !CLIENT_ONLY[layer].includes(imported);
        if (forbidden || outside) violations.push(`${relative(src, file)} -> ${imported}`);
      }
    }
    expect(violations).toEqual([]);
  });
});
