/**
 * The contract at the edge: JSON bodies parsed strictly (src/http/json-body.ts), the contract's
 * schemas registered for request validation, and, when asked (tests), every response checked
 * against the contract and each mismatch reported.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Contract } from '../contract/contract.js';
import { installJsonBodyParser } from '../http/json-body.js';

export interface ContractViolation {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly problem: string;
}

export interface ContractOptions {
  readonly contract: Contract;
  /** The listing API's document (src/contract/listing.ts), whose routes are checked the same way. */
  readonly listing: Contract;
  /** Called for every response that does not match the contract. */
  readonly onViolation?: ((violation: ContractViolation) => void) | undefined;
}

async function contractPlugin(app: FastifyInstance, { contract, listing, onViolation }: ContractOptions) {
  installJsonBodyParser(app);
  for (const schema of [...contract.schemas, ...listing.schemas]) app.addSchema(schema);
  if (onViolation) installContractCheck(app, contract, listing, onViolation);
}

export default fp(contractPlugin, { name: 'arp-rc-contract' });

function installContractCheck(
  app: FastifyInstance,
  contract: Contract,
  listing: Contract,
  report: (violation: ContractViolation) => void,
): void {
  // Imported lazily so that production never compiles the response validators.
  let validators: import('../contract/validators.js').ContractValidators | undefined;
  const operations = new Map(
    [...contract.operations, ...listing.operations].map((op) => [op.operationId, op]),
  );
  app.addHook('onSend', async (request, reply, payload) => {
    validators ??= new (await import('../contract/validators.js')).ContractValidators({
      ...contract,
      schemas: [...contract.schemas, ...listing.schemas],
    });
    const status = reply.statusCode;
    const fail = (problem: string) => report({ method: request.method, url: request.url, status, problem });
    const operation = operations.get(request.routeOptions.config.operationId ?? '');
    // Routes outside both documents (probes, metrics, the documents, the explorer, the inspector's
    // files) answer what they answer; a request no route takes must still get an ErrorEnvelope.
    if (operation === undefined && !request.is404) return payload;
    let schema: string | undefined;
    if (status >= 400) schema = 'ErrorEnvelope';
    else if (operation && status === operation.success.status) {
      if (operation.success.body === undefined) {
        if (payload !== undefined && payload !== '' && payload !== null) fail('a 204 response has a body');
        return payload;
      }
      schema = operation.success.body === 'ndjson' ? undefined : operation.success.body;
    } else fail(`status ${status} is not in the contract for ${operation?.operationId ?? 'this route'}`);
    if (schema === undefined) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('application/json')) fail(`content-type is '${type}'`);
    let body: unknown;
    try {
      body = JSON.parse(String(payload));
    } catch {
      fail('body is not JSON');
      return payload;
    }
    const errors = validators.validate(schema, body);
    if (errors.length > 0) fail(`${schema}: ${JSON.stringify(errors)} in ${String(payload)}`);
    return payload;
  });
}
