/**
 * The listing API's document (openapi/run-listing.yaml): routes outside the ARP Standard's paths
 * for finding Runs. Its `$ref`s to components it does not define name the contract's; the document
 * served at /rc/openapi.json gets those components copied in, so that it stands on its own, while
 * only its own schemas are registered for validation (the contract's already are).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { absolutise, type Contract, type JsonSchema, operationsOf, schemaId } from './contract.js';

export const LISTING_URL = new URL('../../openapi/run-listing.yaml', import.meta.url);

// biome-ignore lint/suspicious/noExplicitAny: walking a parsed OpenAPI document
type Json = Record<string, any>;

const COMPONENT_KINDS = ['schemas', 'parameters', 'responses', 'securitySchemes'] as const;

export function loadListing(contract: Contract, url: URL = LISTING_URL): Contract {
  const own = parse(readFileSync(url, 'utf8')) as Json;
  const theirs = contract.document.components as Json;
  const components: Json = {};
  for (const kind of COMPONENT_KINDS) {
    const mine = (own.components?.[kind] ?? {}) as Json;
    for (const name of Object.keys(mine)) {
      if (theirs[kind]?.[name] !== undefined)
        throw new Error(`listing component ${kind}/${name} shadows the contract's`);
    }
    components[kind] = { ...theirs[kind], ...mine };
  }
  const document = { ...own, components };
  const schemas = Object.entries<Json>(own.components.schemas).map(([name, schema]) => ({
    ...(absolutise(schema) as JsonSchema),
    $id: schemaId(name),
  }));
  return { document, schemas, operations: operationsOf(document) };
}
