/**
 * The examples the API explorer (/docs) fills in: every operation with a request body carries one,
 * every path parameter has one, every example matches its schema, and executed in document order
 * against a fresh service with no executors, the contract's then the listing API's, each is answered
 * with a 2xx (cancel_run goes last among the contract's: it ends the Run the others work on). The service generates the NodeRun ids of the
 * documented answers, so an example that names an id the earlier examples did not create fails.
 */
import { describe, expect, it } from 'vitest';
import { type Contract, loadContract } from '../../src/contract/contract.js';
import { loadListing } from '../../src/contract/listing.js';
import { ContractValidators } from '../../src/contract/validators.js';
import { useApp } from '../helpers/app.js';

// biome-ignore lint/suspicious/noExplicitAny: walking a parsed OpenAPI document
type Json = Record<string, any>;

const contract = loadContract();
const listing = loadListing(contract);
const validators = new ContractValidators({
  ...contract,
  schemas: [...contract.schemas, ...listing.schemas],
});

interface Example {
  readonly document: string;
  readonly operationId: string;
  readonly method: string;
  readonly path: string;
  readonly requestSchema: string | undefined;
  readonly responseSchema: string | undefined;
  readonly parameters: readonly { name: string; in: string; example: unknown }[];
  readonly body: unknown;
  readonly response: unknown;
}

function resolve(document: Json, node: Json): Json {
  const ref = node.$ref as string | undefined;
  if (!ref) return node;
  return ref
    .slice(2)
    .split('/')
    .reduce((at: Json, key) => at[key], document);
}

function mediaExample(media: Json | undefined): unknown {
  if (!media) return undefined;
  if (media.example !== undefined) return media.example;
  const first = Object.values<Json>(media.examples ?? {})[0];
  return first?.value;
}

/** The operations of a document in document order, with their examples. */
function examplesOf(name: string, { document, operations }: Contract): Example[] {
  return operations.map((operation) => {
    const spec = (document as Json).paths[operation.path][operation.method.toLowerCase()] as Json;
    const parameters = ((spec.parameters ?? []) as Json[]).map((p) => resolve(document, p));
    return {
      document: name,
      operationId: operation.operationId,
      method: operation.method,
      path: operation.path,
      requestSchema: operation.requestBody,
      responseSchema: operation.success.body === 'ndjson' ? undefined : operation.success.body,
      parameters: parameters.map((p) => ({ name: p.name, in: p.in, example: p.example })),
      body: mediaExample(spec.requestBody?.content?.['application/json']),
      response: mediaExample(spec.responses?.[operation.success.status]?.content?.['application/json']),
    };
  });
}

const contractExamples = examplesOf('contract', contract);
const listingExamples = examplesOf('listing', listing);
const all = [...contractExamples, ...listingExamples];

/** Every `…_id` string in a JSON value, by its JSON pointer. */
function idsIn(value: unknown, at = ''): Map<string, string> {
  const ids = new Map<string, string>();
  if (value === null || typeof value !== 'object') return ids;
  for (const [key, child] of Object.entries(value)) {
    const pointer = `${at}/${key}`;
    if (typeof child === 'string' && key.endsWith('_id')) ids.set(pointer, child);
    else for (const [p, id] of idsIn(child, pointer)) ids.set(p, id);
  }
  return ids;
}

/** The NodeRun ids of the documented answers, in the order the service creates them. */
function documentedNodeRunIds(): string[] {
  const ids: string[] = [];
  for (const example of contractExamples) {
    for (const [pointer, id] of idsIn(example.response)) {
      if (/(^|\/)(root_)?node_run_id$/.test(pointer) && !ids.includes(id)) ids.push(id);
    }
  }
  return ids;
}

function requestOf(example: Example) {
  let url = example.path;
  const query = new URLSearchParams();
  for (const p of example.parameters) {
    if (p.example === undefined) continue;
    if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(String(p.example)));
    else if (p.in === 'query') query.set(p.name, String(p.example));
  }
  const search = query.size > 0 ? `?${query}` : '';
  return {
    method: example.method as 'GET' | 'POST',
    url: `${url}${search}`,
    ...(example.body !== undefined ? { payload: example.body as object } : {}),
  };
}

describe('examples in the documents', () => {
  it.each(all.map((e) => [`${e.document} ${e.operationId}`, e] as const))(
    '%s: a request body example when it takes a body, path parameter examples, all valid',
    (_name, example) => {
      if (example.requestSchema) {
        expect(example.body, 'request body example').toBeDefined();
        expect(validators.validate(example.requestSchema, example.body)).toEqual([]);
      } else {
        expect(example.body).toBeUndefined();
      }
      for (const p of example.parameters.filter((p) => p.in === 'path')) {
        expect(typeof p.example, `example of path parameter ${p.name}`).toBe('string');
      }
      if (example.response !== undefined && example.responseSchema) {
        expect(validators.validate(example.responseSchema, example.response)).toEqual([]);
      }
    },
  );
});

describe('examples executed in order', () => {
  const createApp = useApp();

  it('every operation of the contract, then of the listing API, answers its example with a 2xx, ids as documented', async () => {
    const nodeRunIds = documentedNodeRunIds();
    expect(nodeRunIds.length).toBeGreaterThanOrEqual(2);
    let next = 0;
    const t = await createApp({
      ids: {
        runId: () => 'run_generated_unexpectedly',
        nodeRunId: () => nodeRunIds[next++] ?? `node_run_beyond_the_examples_${next}`,
      },
    });
    const ordered = [
      ...contractExamples.filter((e) => e.operationId !== 'cancel_run'),
      ...contractExamples.filter((e) => e.operationId === 'cancel_run'),
      ...listingExamples,
    ];
    for (const example of ordered) {
      const res = await t.request(requestOf(example));
      expect(res.statusCode, `${example.operationId}: ${res.body}`).toBeGreaterThanOrEqual(200);
      expect(res.statusCode, `${example.operationId}: ${res.body}`).toBeLessThan(300);
      if (example.response !== undefined) {
        const actual = idsIn(res.json());
        for (const [pointer, id] of idsIn(example.response)) {
          expect(actual.get(pointer), `${example.operationId} ${pointer}`).toBe(id);
        }
      }
    }
    expect(next, 'NodeRuns created by the examples').toBe(nodeRunIds.length);
  });
});
