/**
 * The one request body parser. A body is JSON in strict UTF-8 within the limits of
 * contract/json-limits.ts, or it is a 400: decoding invalid bytes leniently would turn two different
 * requests into the same text (and an "identical retry"), and a body nested past what the service
 * can serialise, or a number that overflows to Infinity, would be stored as something the service
 * cannot serve back unchanged. An empty body is "no body" (e.g. `:cancel` sent with a JSON content
 * type); routes whose contract requires a body then fail validation with a 400.
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { type JsonTextProblem, jsonTextProblem } from '../contract/json-limits.js';
import { ArpError } from '../errors.js';

export function installJsonBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  // Fastify's parser: JSON.parse, then `__proto__` keys are refused (prototype poisoning).
  const parseJson = app.getDefaultJsonParser('error', 'ignore');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) return done(new ArpError('invalid_request', 'Request body is not valid UTF-8'));
    const text = bytes.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    const problem = jsonTextProblem(text);
    if (problem) return done(bodyError(problem));
    parseJson(request, text, (error, parsed) => {
      // Fastify reports a refused `__proto__` key as invalid JSON; say what it is when the text parses.
      if (error && text.includes('__proto__') && parses(text)) {
        return done(
          new ArpError('invalid_request', 'Request body uses the key "__proto__", which is not accepted'),
        );
      }
      done(error, parsed);
    });
  });
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function bodyError(problem: JsonTextProblem): ArpError {
  switch (problem.kind) {
    case 'too_deep':
      return new ArpError(
        'invalid_request',
        `Request body nests arrays and objects deeper than ${problem.maxDepth} levels`,
        { details: { max_depth: problem.maxDepth } },
      );
    case 'out_of_range':
      return new ArpError('invalid_request', `Request body has a number out of range: ${problem.number}`, {
        details: { number: problem.number },
      });
    case 'unpaired_surrogate':
      return new ArpError(
        'invalid_request',
        'Request body has a string with an unpaired surrogate (not Unicode text)',
        {
          details: { character: 'unpaired surrogate' },
        },
      );
    case 'nul_character':
      return new ArpError('invalid_request', 'Request body has a string containing U+0000 (NUL)', {
        details: { character: 'U+0000' },
      });
    default: {
      const never: never = problem;
      throw new Error(`unknown problem ${String(never)}`);
    }
  }
}
