/**
 * Where the ARP standard's `spec/v1` is for this suite: the directory named by ARP_STANDARD_SPEC_V1.
 * `npm run test:standard` installs the published `arp-conformance` wheel (which ships spec/v1) and
 * sets it. Anything missing fails the suite at load: a standard check that cannot find the standard
 * must never pass by checking nothing.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

export const SPEC_ENV = 'ARP_STANDARD_SPEC_V1';

/** What the suites read; a tree without these is not the standard (or an incomplete copy). */
const REQUIRED = [
  'openapi/run-coordinator.openapi.yaml',
  'schemas',
  'conformance/json_vectors',
  'conformance/json_vectors_invalid',
];

function locate(): string {
  const value = process.env[SPEC_ENV];
  if (value === undefined || value.trim() === '') {
    throw new Error(
      `${SPEC_ENV} is not set. Run \`npm run test:standard\`, which installs the arp-conformance ` +
        'wheel and points this variable at the spec/v1 it ships.',
    );
  }
  const root = path.resolve(value);
  const missing = REQUIRED.filter((entry) => !existsSync(path.join(root, entry)));
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory() || missing.length > 0) {
    throw new Error(
      `${SPEC_ENV}=${value} is not an ARP standard spec/v1 directory (missing: ${missing.join(', ') || root})`,
    );
  }
  return root;
}

/** The standard's spec/v1 directory (read-only test data). */
export const STANDARD_V1 = locate();
