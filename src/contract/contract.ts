/**
 * Loads the project's contract (openapi/run-coordinator.yaml) once and derives what the service
 * needs from it: the document served at /openapi.json, its schemas with absolute `$id`s for Ajv,
 * and the list of operations the route table is built from.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const CONTRACT_URL = new URL('../../openapi/run-coordinator.yaml', import.meta.url);
/** Base of the `$id` given to every component schema (never fetched). */
export const SCHEMA_BASE = 'https://arp-run-coordinator.invalid/schemas/';

export type JsonSchema = Record<string, unknown>;

export interface OperationSpec {
  readonly operationId: string;
  readonly method: 'GET' | 'POST';
  /** OpenAPI path, e.g. `/v1/runs/{run_id}:cancel`. */
  readonly path: string;
  /** Component name of the JSON request body, if the operation has one. */
  readonly requestBody: string | undefined;
  /** Component name of the success body, or `ndjson`, or undefined for 204. */
  readonly success: { readonly status: number; readonly body: string | 'ndjson' | undefined };
}

export interface Contract {
  readonly document: Record<string, unknown>;
  /** Component schemas with absolute `$id` and absolute `$ref`s. */
  readonly schemas: readonly JsonSchema[];
  readonly operations: readonly OperationSpec[];
}

const COMPONENT_REF = '#/components/schemas/';

export const schemaId = (component: string) => `${SCHEMA_BASE}${component}`;

function componentName(ref: unknown): string {
  if (typeof ref !== 'string' || !ref.startsWith(COMPONENT_REF))
    throw new Error(`unexpected $ref ${String(ref)}`);
  return ref.slice(COMPONENT_REF.length);
}

/** Rewrites internal `#/components/schemas/X` refs to absolute ids (fast-json-stringify and Ajv both resolve those). */
export function absolutise(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(absolutise);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] = key === '$ref' ? schemaId(componentName(value)) : absolutise(value);
  }
  return out;
}

// The document is untyped YAML; the contract test pins its shape.
// biome-ignore lint/suspicious/noExplicitAny: walking a parsed OpenAPI document
type Json = Record<string, any>;

function resolve(document: Json, node: Json): Json {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  return ref
    .split('/')
    .slice(1)
    .reduce((at: Json, part) => at[part], document);
}

export function operationsOf(document: Json): OperationSpec[] {
  const operations: OperationSpec[] = [];
  for (const [path, item] of Object.entries<Json>(document.paths)) {
    for (const [method, operation] of Object.entries<Json>(item)) {
      const [status, response] = Object.entries<Json>(operation.responses).find(([code]) =>
        code.startsWith('2'),
      )!;
      const content = resolve(document, response).content as Json | undefined;
      const body = content?.['application/json']
        ? componentName(content['application/json'].schema.$ref)
        : content?.['application/x-ndjson']
          ? 'ndjson'
          : undefined;
      const requestSchema = operation.requestBody?.content?.['application/json']?.schema;
      operations.push({
        operationId: operation.operationId,
        method: method.toUpperCase() as OperationSpec['method'],
        path,
        requestBody: requestSchema ? componentName(requestSchema.$ref) : undefined,
        success: { status: Number(status), body },
      });
    }
  }
  return operations;
}

export function loadContract(url: URL = CONTRACT_URL): Contract {
  const document = parse(readFileSync(url, 'utf8')) as Json;
  const schemas = Object.entries<Json>(document.components.schemas).map(([name, schema]) => ({
    ...(absolutise(schema) as JsonSchema),
    $id: schemaId(name),
  }));
  return { document, schemas, operations: operationsOf(document) };
}
