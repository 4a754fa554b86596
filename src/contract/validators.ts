/**
 * Standalone Ajv validators for every component schema of the contract: used to check responses in
 * tests, and by the client layer to check what peers send back.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { type Contract, type JsonSchema, schemaId } from './contract.js';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export interface SchemaError {
  readonly path: string;
  readonly message: string;
}

export class ContractValidators {
  readonly #ajv: Ajv;
  readonly #cache = new Map<string, ValidateFunction>();
  readonly #schemas = new Map<string, JsonSchema>();

  constructor(contract: Contract) {
    for (const schema of contract.schemas) this.#schemas.set(String(schema.$id), schema);
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

  /**
   * A copy of a peer's payload with what the reference services send but the schemas forbid taken
   * out: `null` for an absent field (FastAPI's default serialisation) and extension keys that are
   * not namespaced. Free-form maps (`inputs`, `outputs`, `details`, ...) are left exactly as sent.
   * The walk follows the schema, not the data, and no component schema refers back to itself, so
   * its depth is bounded whatever the payload (the text was held to MAX_JSON_DEPTH before parsing).
   */
  tolerate(name: string, data: unknown): unknown {
    return this.#tolerate(this.#schemas.get(schemaId(name)), data);
  }

  #tolerate(schema: JsonSchema | undefined, data: unknown): unknown {
    if (!schema || data === null || typeof data !== 'object') return data;
    if (typeof schema.$ref === 'string') return this.#tolerate(this.#schemas.get(schema.$ref), data);
    if (Array.isArray(data)) {
      const items = schema.items as JsonSchema | undefined;
      return items ? data.map((item) => this.#tolerate(items, item)) : data;
    }
    const patterns = schema.patternProperties as Record<string, unknown> | undefined;
    const properties = schema.properties as Record<string, JsonSchema> | undefined;
    if (!patterns && !properties) return data;
    const keyPatterns = patterns ? Object.keys(patterns).map((pattern) => new RegExp(pattern, 'u')) : [];
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(data)) {
      const property = properties && Object.hasOwn(properties, key) ? properties[key] : undefined;
      if (property) {
        if (value !== null) setOwn(out, key, this.#tolerate(property, value));
      } else if (!patterns || keyPatterns.some((pattern) => pattern.test(key))) {
        // Fields outside the schema stay, so that validation still rejects them.
        setOwn(out, key, value);
      }
    }
    return out;
  }

  has(name: string): boolean {
    return this.#ajv.getSchema(schemaId(name)) !== undefined;
  }
}

/**
 * Defines `key` as an own property. Plain assignment of a `__proto__` key (which JSON.parse creates
 * as an ordinary key) would instead replace the object's prototype, and the peer's fields would be
 * read through it as if they had passed validation.
 */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
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
