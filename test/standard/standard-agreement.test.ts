/**
 * Proves that the project's contract (openapi/run-coordinator.yaml, one self-contained document with
 * internal `#/components/...` refs) agrees with the ARP Standard's run-coordinator.openapi.yaml
 * (relative file refs into ../schemas, and refs inside schema files relative to that file).
 *
 * Both documents are fully dereferenced by a small resolver written here, prose is stripped, and the
 * results are compared structurally; a failure names the JSON pointer of the first difference.
 *
 * The only allowed difference: the project adds the optional query parameters `follow` and
 * `after_seq` to the two event stream operations.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONTRACT_FILE, PROJECT_ROOT } from '../helpers/paths.js';
import { STANDARD_V1 } from './spec.js';

// ---------------------------------------------------------------------------------------------
// Locations (from the project root, never from cwd)
// ---------------------------------------------------------------------------------------------

const PROJECT_CONTRACT = CONTRACT_FILE;
const STANDARD_CONTRACT = path.join(STANDARD_V1, 'openapi', 'run-coordinator.openapi.yaml');
const STANDARD_SCHEMAS = path.join(STANDARD_V1, 'schemas');

// ---------------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (value: unknown): value is JsonObject =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const clone = <T>(value: T): T => structuredClone(value);

const escapePointer = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');
const unescapePointer = (token: string) => token.replace(/~1/g, '/').replace(/~0/g, '~');
const pointer = (...tokens: string[]) => tokens.map((t) => `/${escapePointer(t)}`).join('');

/** Prose: documentation only, never compared. */
const PROSE = new Set(['description', 'title', 'summary', 'tags', 'example', 'examples', '$comment']);

/** A node that only points elsewhere (prose aside). */
const isAlias = (node: Json): node is JsonObject =>
  isObject(node) &&
  typeof node.$ref === 'string' &&
  Object.keys(node).every((k) => k === '$ref' || PROSE.has(k));

// ---------------------------------------------------------------------------------------------
// $ref resolver
// ---------------------------------------------------------------------------------------------

/**
 * Fully dereferences a document: every `{$ref}` is replaced by its target, itself dereferenced
 * relative to the file it lives in. Supports internal refs (`#/a/b`), relative file refs
 * (`../x.json`, `x.json#/a`), YAML and JSON files. A ref that re-enters a target still being
 * resolved becomes `{ $cycle: n }` (n = how many refs up the chain the target was entered), which
 * is structural, so two equal recursive schemas compare equal and neither resolution loops.
 * Sibling keywords of a `$ref` are kept (merged over the target) so that they are compared too.
 */
class RefResolver {
  readonly #documents = new Map<string, Json>();
  static readonly MAX_DEPTH = 64;

  /** Registers an in-memory document under an absolute file path (used by the sanity tests). */
  add(file: string, document: Json): this {
    this.#documents.set(path.resolve(file), document);
    return this;
  }

  document(file: string): Json {
    const absolute = path.resolve(file);
    let document = this.#documents.get(absolute);
    if (document === undefined) {
      if (!existsSync(absolute)) throw new Error(`$ref target file does not exist: ${absolute}`);
      // JSON is YAML, so one parser reads both kinds of file.
      document = parse(readFileSync(absolute, 'utf8')) as Json;
      this.#documents.set(absolute, document);
    }
    return document;
  }

  /** The fully dereferenced document stored at `file` (a ref back to its root is a cycle). */
  resolveFile(file: string): Json {
    const absolute = path.resolve(file);
    return this.#walk(this.document(absolute), absolute, [[`${absolute}#`]]);
  }

  /** Fully dereferences `node`, which lives in `file`. */
  resolve(node: Json, file: string): Json {
    return this.#walk(node, path.resolve(file), []);
  }

  /**
   * `stack` holds one frame per ref being resolved; a frame lists every target of an alias chain
   * (a target that is itself only a `$ref`), so that `A -> B -> schema` and `A -> schema` recurse
   * at the same distance.
   */
  #walk(node: Json, file: string, stack: readonly (readonly string[])[]): Json {
    if (Array.isArray(node)) return node.map((item) => this.#walk(item, file, stack));
    if (!isObject(node)) return node;
    const ref = node.$ref;
    if (typeof ref === 'string') {
      const frame: string[] = [];
      let target = this.#locate(ref, file);
      for (;;) {
        const index = stack.findIndex((entered) => entered.includes(target.key));
        if (index >= 0) return { $cycle: stack.length - index };
        if (frame.includes(target.key)) throw new Error(`$ref alias loop through ${target.key}`);
        frame.push(target.key);
        const value = target.value;
        if (!isAlias(value)) break;
        target = this.#locate(value.$ref as string, target.file);
      }
      if (stack.length >= RefResolver.MAX_DEPTH) {
        throw new Error(`$ref chain deeper than ${RefResolver.MAX_DEPTH} at ${target.key}`);
      }
      const resolved = this.#walk(target.value, target.file, [...stack, frame]);
      const { $ref: _ref, ...siblings } = node;
      if (Object.keys(siblings).length === 0) return resolved;
      if (!isObject(resolved)) throw new Error(`$ref ${ref} with sibling keywords points at a non-object`);
      return { ...resolved, ...(this.#walk(siblings, file, stack) as JsonObject) };
    }
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) out[key] = this.#walk(value, file, stack);
    return out;
  }

  #locate(ref: string, file: string): { key: string; file: string; value: Json } {
    if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) throw new Error(`absolute $ref not supported: ${ref} (in ${file})`);
    const hash = ref.indexOf('#');
    const filePart = hash >= 0 ? ref.slice(0, hash) : ref;
    const fragment = hash >= 0 ? ref.slice(hash + 1) : '';
    const targetFile = filePart === '' ? file : path.resolve(path.dirname(file), decodeURI(filePart));
    const decoded = decodeURIComponent(fragment);
    if (decoded !== '' && !decoded.startsWith('/')) {
      throw new Error(`unsupported $ref fragment '${fragment}' in ${ref} (in ${file})`);
    }
    let value: Json = this.document(targetFile);
    const tokens = decoded === '' ? [] : decoded.split('/').slice(1).map(unescapePointer);
    for (const token of tokens) {
      const next: Json | undefined = Array.isArray(value)
        ? value[Number(token)]
        : isObject(value)
          ? value[token]
          : undefined;
      if (next === undefined) throw new Error(`unresolvable $ref ${ref} (in ${file}): no '${token}'`);
      value = next;
    }
    return { key: `${targetFile}#${decoded}`, file: targetFile, value };
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation and comparison
// ---------------------------------------------------------------------------------------------

/**
 * Keys whose object value maps names (property names, paths, status codes, media types, header
 * names, component names) to objects: inside such a map a key like `description` is a name, not prose.
 */
const NAME_MAPS = new Set([
  'properties',
  'patternProperties',
  'definitions',
  '$defs',
  'dependentSchemas',
  'paths',
  'responses',
  'content',
  'headers',
  'encoding',
  'links',
  'callbacks',
  'variables',
  'schemas',
  'parameters',
  'requestBodies',
  'securitySchemes',
]);

/** Keywords whose array value is a set: order carries no meaning. */
const SET_KEYWORDS = new Set(['required']);

/** Strips prose (outside name maps) and puts set-valued keywords in a canonical order. */
function normalize(node: Json, inNameMap = false): Json {
  if (Array.isArray(node)) return node.map((item) => normalize(item));
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (!inNameMap && PROSE.has(key)) continue;
    if (
      !inNameMap &&
      SET_KEYWORDS.has(key) &&
      Array.isArray(value) &&
      value.every((v) => typeof v === 'string')
    ) {
      out[key] = [...(value as string[])].sort();
      continue;
    }
    out[key] = normalize(value, !inNameMap && NAME_MAPS.has(key) && isObject(value));
  }
  return out;
}

interface Difference {
  readonly pointer: string;
  readonly standard: Json | undefined;
  readonly project: Json | undefined;
}

/** The first structural difference between two JSON values (depth-first, keys in sorted order). */
function firstDifference(
  standard: Json | undefined,
  project: Json | undefined,
  at = '',
): Difference | undefined {
  if (Array.isArray(standard) && Array.isArray(project)) {
    for (let i = 0; i < Math.max(standard.length, project.length); i += 1) {
      const difference = firstDifference(standard[i], project[i], `${at}/${i}`);
      if (difference) return difference;
    }
    return undefined;
  }
  if (isObject(standard) && isObject(project)) {
    const keys = [...new Set([...Object.keys(standard), ...Object.keys(project)])].sort();
    for (const key of keys) {
      const difference = firstDifference(standard[key], project[key], `${at}/${escapePointer(key)}`);
      if (difference) return difference;
    }
    return undefined;
  }
  return Object.is(standard, project) ? undefined : { pointer: at || '/', standard, project };
}

const show = (value: Json | undefined) => {
  if (value === undefined) return '(absent)';
  const text = JSON.stringify(value);
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

/** Undefined when equal, else a one-line description naming the JSON pointer of the first difference. */
function disagreement(
  where: string,
  standard: Json | undefined,
  project: Json | undefined,
): string | undefined {
  const difference = firstDifference(normalize(standard ?? null), normalize(project ?? null));
  return difference
    ? `${where}: first difference at ${difference.pointer}: standard ${show(difference.standard)}, project ${show(difference.project)}`
    : undefined;
}

// ---------------------------------------------------------------------------------------------
// The two documents
// ---------------------------------------------------------------------------------------------

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function loadResolved(file: string): JsonObject {
  expect(existsSync(file), `${file} must exist`).toBe(true);
  const resolved = new RefResolver().resolveFile(file);
  if (!isObject(resolved)) throw new Error(`${file} is not an OpenAPI document`);
  return resolved;
}

const standard = loadResolved(STANDARD_CONTRACT);
const project = loadResolved(PROJECT_CONTRACT);
const standardRaw = new RefResolver().document(STANDARD_CONTRACT) as JsonObject;
const projectRaw = new RefResolver().document(PROJECT_CONTRACT) as JsonObject;

const pathsOf = (document: JsonObject) => document.paths as Record<string, JsonObject>;

interface Operation {
  readonly path: string;
  readonly method: string;
  readonly operation: JsonObject;
}

function operationsOf(document: JsonObject): Operation[] {
  return Object.entries(pathsOf(document)).flatMap(([route, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, operation]) => ({ path: route, method, operation: operation as JsonObject })),
  );
}

const standardOperations = operationsOf(standard);
const projectOperation = (route: string, method: string) =>
  pathsOf(project)[route]?.[method] as JsonObject | undefined;

const parameterKey = (parameter: JsonObject) => `${String(parameter.in)}:${String(parameter.name)}`;
const parametersOf = (operation: JsonObject | undefined): JsonObject[] =>
  (operation?.parameters as JsonObject[] | undefined) ?? [];

/** The documented additions: operationId -> extra `in:name` parameter keys. */
const DOCUMENTED_EXTRA_PARAMETERS: Record<string, string[]> = {
  stream_run_events: ['query:after_seq', 'query:follow'],
  stream_node_run_events: ['query:after_seq', 'query:follow'],
};

/** The operation without its parameters (compared separately, as a keyed set). */
function withoutParameters(operation: JsonObject | undefined): JsonObject | undefined {
  if (!operation) return undefined;
  const { parameters: _parameters, ...rest } = operation;
  return rest;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe('the project contract agrees with the ARP standard run-coordinator.openapi.yaml', () => {
  it('reads both documents (the standard from ARP_STANDARD_SPEC_V1)', () => {
    expect(standard.openapi).toBe('3.0.3');
    expect(project.openapi).toBe(standard.openapi);
    expect(standardOperations.length).toBeGreaterThanOrEqual(10);
  });

  it('has exactly the standard paths (none missing, none extra)', () => {
    expect(Object.keys(pathsOf(project)).sort()).toEqual(Object.keys(pathsOf(standard)).sort());
  });

  it('has exactly the standard methods on every path', () => {
    const methods = (document: JsonObject) =>
      Object.fromEntries(
        Object.entries(pathsOf(document)).map(([route, item]) => [route, Object.keys(item).sort()]),
      );
    expect(methods(project)).toEqual(methods(standard));
  });

  it('has the same operationId on every path and method, and they are unique', () => {
    const ids = (document: JsonObject) =>
      Object.fromEntries(
        operationsOf(document).map((op) => [`${op.method} ${op.path}`, op.operation.operationId]),
      );
    expect(ids(project)).toEqual(ids(standard));
    const all = operationsOf(project).map((op) => op.operation.operationId);
    expect(new Set(all).size).toBe(all.length);
  });

  it('has the same global security requirement (ArpBearerJWT) and security scheme', () => {
    expect(standard.security).toEqual([{ ArpBearerJWT: [] }]);
    expect(disagreement('security', standard.security, project.security)).toBeUndefined();
    const schemes = (document: JsonObject) => (document.components as JsonObject).securitySchemes;
    expect(disagreement('components/securitySchemes', schemes(standard), schemes(project))).toBeUndefined();
  });

  it('leaves health and version unauthenticated (security: []) and every other operation bearer-protected', () => {
    const effective = (document: JsonObject) =>
      Object.fromEntries(
        operationsOf(document).map((op) => [
          String(op.operation.operationId),
          op.operation.security ?? document.security,
        ]),
      );
    const expected = effective(standard);
    expect(expected.health).toEqual([]);
    expect(expected.version).toEqual([]);
    expect(effective(project)).toEqual(expected);
    for (const op of operationsOf(project)) {
      const id = String(op.operation.operationId);
      if (id === 'health' || id === 'version') expect(op.operation.security, id).toEqual([]);
      else expect(op.operation.security, id).toBeUndefined();
    }
  });

  it('declares the standard WWW-Authenticate header on every 401 response', () => {
    let checked = 0;
    for (const { path: route, method, operation } of standardOperations) {
      const expected = (operation.responses as JsonObject)['401'];
      const actual = (projectOperation(route, method)?.responses as JsonObject | undefined)?.['401'];
      if (expected === undefined) {
        expect(actual, `${method} ${route}: no 401 in the standard`).toBeUndefined();
        continue;
      }
      checked += 1;
      const header = (response: Json | undefined) =>
        isObject(response) && isObject(response.headers) ? response.headers['WWW-Authenticate'] : undefined;
      expect(header(expected), 'the standard declares WWW-Authenticate').toBeDefined();
      expect(
        disagreement(`${method} ${route} 401 WWW-Authenticate`, header(expected), header(actual)),
      ).toBeUndefined();
      expect(normalize(header(actual) ?? null)).toEqual({ schema: { type: 'string' } });
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  });

  it('adds exactly the documented extra parameters (follow, after_seq on the event streams)', () => {
    const extras: Record<string, string[]> = {};
    for (const { path: route, method, operation } of standardOperations) {
      const known = new Set(parametersOf(operation).map(parameterKey));
      const added = parametersOf(projectOperation(route, method))
        .map(parameterKey)
        .filter((key) => !known.has(key))
        .sort();
      if (added.length > 0) extras[String(operation.operationId)] = added;
    }
    expect(extras).toEqual(DOCUMENTED_EXTRA_PARAMETERS);
  });

  describe.each(standardOperations.map((op) => [op.method.toUpperCase(), op.path, op] as const))(
    '%s %s',
    (_method, _route, { path: route, method, operation }) => {
      const mine = projectOperation(route, method);
      const where = `${method.toUpperCase()} ${route}`;

      it('exists in the project with the same operationId', () => {
        expect(mine, `${where} missing from the project`).toBeDefined();
        expect(mine?.operationId).toBe(operation.operationId);
      });

      it('has the same status codes', () => {
        const codes = (op: JsonObject | undefined) => Object.keys((op?.responses as JsonObject) ?? {}).sort();
        expect(codes(mine)).toEqual(codes(operation));
      });

      it('has the same response bodies per status and content type, and the same headers', () => {
        expect(disagreement(`${where} responses`, operation.responses, mine?.responses)).toBeUndefined();
      });

      it('has the same request body', () => {
        expect(
          disagreement(`${where} requestBody`, operation.requestBody, mine?.requestBody),
        ).toBeUndefined();
      });

      it('is structurally equal apart from parameters (operationId, security, body, responses)', () => {
        expect(disagreement(where, withoutParameters(operation), withoutParameters(mine))).toBeUndefined();
      });

      it("declares every standard parameter identically (the standard's are a subset)", () => {
        const byKey = new Map(parametersOf(mine).map((p) => [parameterKey(p), p]));
        for (const parameter of parametersOf(operation)) {
          const key = parameterKey(parameter);
          expect(byKey.has(key), `${where}: parameter ${key} missing`).toBe(true);
          expect(disagreement(`${where} parameter ${key}`, parameter, byKey.get(key))).toBeUndefined();
        }
      });

      it('adds only optional query parameters, each declared once', () => {
        const keys = parametersOf(mine).map(parameterKey);
        expect(new Set(keys).size, `${where}: duplicate parameters ${keys.join(', ')}`).toBe(keys.length);
        const known = new Set(parametersOf(operation).map(parameterKey));
        for (const parameter of parametersOf(mine)) {
          if (known.has(parameterKey(parameter))) continue;
          expect(parameter.in, `${where}: extra parameter ${parameterKey(parameter)}`).toBe('query');
          expect(parameter.required ?? false, `${where}: extra parameter ${parameter.name} is required`).toBe(
            false,
          );
          expect(isObject(parameter.schema), `${where}: extra parameter ${parameter.name} has a schema`).toBe(
            true,
          );
        }
      });
    },
  );

  it('has no path-level keys (shared parameters, servers) beyond the operations', () => {
    const pathLevel = (document: JsonObject) =>
      Object.fromEntries(
        Object.entries(pathsOf(document)).map(([route, item]) => [
          route,
          Object.fromEntries(Object.entries(item).filter(([key]) => !HTTP_METHODS.includes(key))),
        ]),
      );
    expect(disagreement('path items', pathLevel(standard), pathLevel(project))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// The vocabulary in components/schemas agrees with the standard's schema files (by title)
// ---------------------------------------------------------------------------------------------

function schemaFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return schemaFiles(full);
    return entry.name.endsWith('.schema.json') ? [full] : [];
  });
}

describe('components/schemas agree with the standard schema files of the same title', () => {
  const files = schemaFiles(STANDARD_SCHEMAS).sort();
  const projectSchemas = (project.components as JsonObject).schemas as JsonObject;
  const resolver = new RefResolver();

  it('finds the standard schema files', () => {
    expect(files.length).toBeGreaterThan(40);
  });

  it.each(files.map((file) => [path.relative(STANDARD_SCHEMAS, file), file]))('%s', (_name, file) => {
    const raw = resolver.document(file) as JsonObject;
    const title = String(raw.title);
    expect(projectSchemas[title], `no component named ${title}`).toBeDefined();
    expect(
      disagreement(`components/schemas/${title}`, resolver.resolveFile(file), projectSchemas[title]),
    ).toBeUndefined();
  });

  it('every component the standard run-coordinator document names resolves to the same schema', () => {
    const standardComponents = (standard.components as JsonObject).schemas as JsonObject;
    for (const [name, schema] of Object.entries(standardComponents)) {
      expect(disagreement(`components/schemas/${name}`, schema, projectSchemas[name])).toBeUndefined();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Sanity: the resolver resolves, and the comparator does detect differences
// ---------------------------------------------------------------------------------------------

describe('resolver and comparator sanity', () => {
  const getRun = (document: JsonObject) => pathsOf(document)['/v1/runs/{run_id}']!.get as JsonObject;
  const runSchemaPointer = pointer('responses', '200', 'content', 'application/json', 'schema');
  const runSchema = (operation: JsonObject) =>
    (((operation.responses as JsonObject)['200'] as JsonObject).content as JsonObject)[
      'application/json'
    ] as JsonObject;

  it('resolved the standard file refs, including refs inside schema files relative to that file', () => {
    const run = runSchema(getRun(standard)).schema as JsonObject;
    const properties = run.properties as JsonObject;
    expect((properties.state as JsonObject).enum).toEqual([
      'queued',
      'running',
      'succeeded',
      'failed',
      'canceled',
    ]);
    // core/run.schema.json -> ../common/extensions.schema.json
    expect((properties.extensions as JsonObject).additionalProperties).toBe(false);
    // core/run.schema.json -> run_context.schema.json -> ../common/resource_ref.schema.json
    const actor = ((properties.run_context as JsonObject).properties as JsonObject).actor as JsonObject;
    expect((actor.required as string[]).sort()).toEqual(['id', 'type']);
    expect(JSON.stringify(standard)).not.toContain('"$ref"');
    expect(JSON.stringify(project)).not.toContain('"$ref"');
  });

  it('resolved the project refs to components/parameters and components/responses', () => {
    const operation = getRun(project);
    expect(parametersOf(operation)[0]).toMatchObject({ name: 'run_id', in: 'path', required: true });
    expect(((operation.responses as JsonObject)['401'] as JsonObject).headers).toBeDefined();
    expect(standardRaw.paths).toBeDefined();
    expect(JSON.stringify(projectRaw)).toContain('#/components/parameters/RunId');
  });

  it('reports a changed enum value at its JSON pointer', () => {
    const mutated = clone(getRun(standard));
    const state = ((runSchema(mutated).schema as JsonObject).properties as JsonObject).state as JsonObject;
    state.enum = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
    const message = disagreement('get_run', getRun(standard), mutated);
    expect(message).toContain(`${runSchemaPointer}/properties/state/enum/4`);
    expect(message).toContain('"cancelled"');
    expect(disagreement('get_run', getRun(standard), getRun(project))).toBeUndefined();
  });

  it('reports a removed required field', () => {
    const mutated = clone(getRun(project));
    const schema = runSchema(mutated).schema as JsonObject;
    schema.required = (schema.required as string[]).filter((name) => name !== 'root_node_run_id');
    const message = disagreement('get_run', getRun(standard), mutated);
    expect(message).toContain(`${runSchemaPointer}/required/`);
  });

  it('reports a missing property, a missing status code and an extra parameter', () => {
    const mutated = clone(getRun(project));
    delete ((runSchema(mutated).schema as JsonObject).properties as JsonObject).ended_at;
    expect(disagreement('x', getRun(standard), mutated)).toContain(
      `${runSchemaPointer}/properties/ended_at: standard {"type":"string","format":"date-time"}, project (absent)`,
    );
    const noForbidden = clone(getRun(project));
    delete (noForbidden.responses as JsonObject)['403'];
    expect(disagreement('x', getRun(standard), noForbidden)).toContain('/responses/403');
    const extra = clone(getRun(project));
    (extra.parameters as JsonObject[]).push({ name: 'q', in: 'query', schema: { type: 'string' } });
    expect(disagreement('x', getRun(standard), extra)).toContain('/parameters/1');
  });

  it('ignores prose keywords but not properties that happen to be named like them', () => {
    const a: Json = {
      type: 'object',
      description: 'a',
      title: 'A',
      properties: { description: { type: 'string' } },
    };
    const b: Json = { type: 'object', description: 'b', properties: { description: { type: 'string' } } };
    expect(disagreement('prose', a, b)).toBeUndefined();
    const c: Json = { type: 'object', properties: {} };
    expect(disagreement('prose', a, c)).toContain('/properties/description');
    const d: Json = { type: 'object', required: ['b', 'a'] };
    const e: Json = { type: 'object', required: ['a', 'b'] };
    expect(disagreement('required is a set', d, e)).toBeUndefined();
  });

  it('guards against $ref cycles and resolves recursive schemas to comparable markers', () => {
    const root = path.join(PROJECT_ROOT, '__virtual__');
    const resolver = new RefResolver()
      .add(path.join(root, 'a.json'), {
        type: 'object',
        properties: { child: { $ref: 'sub/b.json' }, self: { $ref: '#' } },
      })
      .add(path.join(root, 'sub', 'b.json'), { type: 'array', items: { $ref: '../a.json' } })
      .add(path.join(root, 'c.yaml'), {
        components: {
          schemas: { Node: { type: 'object', properties: { next: { $ref: '#/components/schemas/Node' } } } },
        },
      });
    const a = resolver.resolveFile(path.join(root, 'a.json'));
    expect(a).toEqual({
      type: 'object',
      properties: { child: { type: 'array', items: { $cycle: 2 } }, self: { $cycle: 1 } },
    });
    const node = resolver.resolve({ $ref: '#/components/schemas/Node' }, path.join(root, 'c.yaml'));
    expect(node).toEqual({ type: 'object', properties: { next: { $cycle: 1 } } });
    expect(() => resolver.resolve({ $ref: 'missing.json' }, path.join(root, 'a.json'))).toThrow(
      /does not exist/,
    );
    expect(() => resolver.resolve({ $ref: '#/nope' }, path.join(root, 'a.json'))).toThrow(/unresolvable/);
  });
});
