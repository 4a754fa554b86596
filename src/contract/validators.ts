/**
 * Standalone Ajv validators for every component schema of the contract: used to check responses in
 * tests, and by the client layer to check what peers send back.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { type Contract, schemaId } from './contract.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export interface SchemaError {
  readonly path: string;
  readonly message: string;
}

export class ContractValidators {
  readonly #ajv: Ajv;
  readonly #cache = new Map<string, ValidateFunction>();

  constructor(contract: Contract) {
    this.#ajv = new Ajv({ allErrors: true, strict: true, schemas: contract.schemas as object[] });
    addFormats(this.#ajv);
  }

  /** Returns the errors of `data` against component `name` (empty when valid). */
  validate(name: string, data: unknown): SchemaError[] {
    let validate = this.#cache.get(name);
    if (!validate) {
      const compiled = this.#ajv.getSchema(schemaId(name));
      if (!compiled) throw new Error(`unknown schema component ${name}`);
      validate = compiled;
      this.#cache.set(name, validate);
    }
    return validate(data) ? [] : formatErrors(validate.errors ?? []);
  }

  has(name: string): boolean {
    return this.#ajv.getSchema(schemaId(name)) !== undefined;
  }
}

/** Ajv errors as `{path, message}` pairs, naming the offending property where Ajv only hints at it. */
export function formatErrors(errors: readonly ErrorObject[], prefix = ''): SchemaError[] {
  return errors.map((error) => {
    const path = `${prefix}${error.instancePath}` || '/';
    const params = error.params as Record<string, unknown>;
    const message =
      error.keyword === 'additionalProperties'
        ? `must NOT have additional property '${String(params.additionalProperty)}'`
        : (error.message ?? 'is invalid');
    return { path, message };
  });
}
