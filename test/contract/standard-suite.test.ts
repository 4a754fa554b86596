/**
 * The suites that check the contract against the published ARP standard (test/standard, run by
 * `npm run test:standard` with the standard's spec/v1 in ARP_STANDARD_SPEC_V1) fail when they cannot
 * find the standard: they never pass or skip by checking nothing. Each case runs that suite in a
 * real vitest process.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/paths.js';

const VITEST = path.join(PROJECT_ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const CONFIG = path.join('test', 'standard', 'vitest.config.ts');

async function runStandardSuite(spec: string | undefined) {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.ARP_STANDARD_SPEC_V1;
  if (spec !== undefined) env.ARP_STANDARD_SPEC_V1 = spec;
  const child = spawn(process.execPath, [VITEST, 'run', '--config', CONFIG], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('the standard suites without the standard', () => {
  it.each([
    ['unset', undefined, 'ARP_STANDARD_SPEC_V1 is not set'],
    ['a directory that is not spec/v1', PROJECT_ROOT, 'is not an ARP standard spec/v1 directory'],
  ])('fail when ARP_STANDARD_SPEC_V1 is %s', { timeout: 60_000 }, async (_case, spec, message) => {
    const { code, output } = await runStandardSuite(spec);
    expect(code, output).toBe(1);
    expect(output).toContain(message);
    // Both files fail at load; no test passes or is skipped.
    expect(output).toContain('Tests: 0 passed, 2 failed, 0 skipped');
  });
});
