/**
 * The ARP Standard's conformance vectors against the project's validators: every vector in
 * conformance/json_vectors must be accepted and every one in conformance/json_vectors_invalid
 * rejected by the component whose name is the `title` of the matching standard schema file
 * (`<dir>/<name>.json` -> `schemas/<dir>/<name>.schema.json`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadContract } from '../../src/contract/contract.js';
import { ContractValidators } from '../../src/contract/validators.js';
import { STANDARD_V1 } from './spec.js';

const SCHEMAS = path.join(STANDARD_V1, 'schemas');
const VALID = path.join(STANDARD_V1, 'conformance', 'json_vectors');
const INVALID = path.join(STANDARD_V1, 'conformance', 'json_vectors_invalid');

interface Vector {
  /** `<dir>/<name>.json`, relative to the vector tree. */
  readonly name: string;
  readonly file: string;
  readonly schemaFile: string;
}

function vectorsIn(root: string): Vector[] {
  if (!existsSync(root)) return [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return walk(full);
      return entry.name.endsWith('.json') ? [full] : [];
    });
  return walk(root)
    .sort()
    .map((file) => {
      const name = path.relative(root, file).split(path.sep).join('/');
      return { name, file, schemaFile: path.join(SCHEMAS, name.replace(/\.json$/, '.schema.json')) };
    });
}

const validators = new ContractValidators(loadContract());

/** The project component for a vector: the `title` of the standard schema file it mirrors. */
function componentFor(vector: Vector): string {
  expect(existsSync(vector.schemaFile), `no standard schema ${vector.schemaFile} for ${vector.name}`).toBe(
    true,
  );
  const title = (JSON.parse(readFileSync(vector.schemaFile, 'utf8')) as { title?: unknown }).title;
  expect(typeof title, `${vector.schemaFile} has a title`).toBe('string');
  expect(
    validators.has(String(title)),
    `the project has no component named '${String(title)}' (${vector.name})`,
  ).toBe(true);
  return String(title);
}

const readVector = (vector: Vector): unknown => JSON.parse(readFileSync(vector.file, 'utf8'));

const valid = vectorsIn(VALID);
const invalid = vectorsIn(INVALID);

describe('ARP standard conformance vectors', () => {
  it('finds the vector trees (more than 40 vectors in each)', () => {
    expect(valid.length, VALID).toBeGreaterThan(40);
    expect(invalid.length, INVALID).toBeGreaterThan(40);
  });

  it('maps every vector to a standard schema and a project component', () => {
    const missing = [...valid, ...invalid].filter((vector) => {
      if (!existsSync(vector.schemaFile)) return true;
      const title = (JSON.parse(readFileSync(vector.schemaFile, 'utf8')) as { title?: unknown }).title;
      return typeof title !== 'string' || !validators.has(title);
    });
    expect(missing.map((vector) => vector.name)).toEqual([]);
  });

  describe('json_vectors: accepted', () => {
    it.each(valid.map((vector) => [vector.name, vector] as const))('%s', (_name, vector) => {
      const component = componentFor(vector);
      expect(validators.validate(component, readVector(vector)), `${vector.name} as ${component}`).toEqual(
        [],
      );
    });
  });

  describe('json_vectors_invalid: rejected', () => {
    it.each(invalid.map((vector) => [vector.name, vector] as const))('%s', (_name, vector) => {
      const component = componentFor(vector);
      expect(
        validators.validate(component, readVector(vector)).length,
        `${vector.name} must be rejected by ${component}`,
      ).toBeGreaterThan(0);
    });
  });
});
