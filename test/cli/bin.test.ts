/**
 * The `arp-rc` bin as a user gets it: package.json's bin entry, bin/arp-rc.mjs, and the compiled
 * CLI in dist/cli. A copy of the package in a temporary directory (its node_modules linked) is
 * first run unbuilt, where the bin must say how to build, then built and run through
 * `npx arp-rc`, which resolves the package's own bin (with --offline, so that npm never asks the
 * registry). Only src/cli/main.ts and what it imports are compiled, which also keeps the CLI from
 * importing the service.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/cli.js';
import { overview } from '../../src/cli/help.js';
import { useApp } from '../helpers/app.js';
import { PROJECT_ROOT } from '../helpers/paths.js';
import { arpRc, type CliResult, serve } from './harness.js';

const run = promisify(execFile);
const newApp = useApp();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'arp-rc-bin-'));
  await writeFile(path.join(dir, 'package.json'), await readFile(path.join(PROJECT_ROOT, 'package.json')));
  await mkdir(path.join(dir, 'bin'));
  await cp(path.join(PROJECT_ROOT, 'bin/arp-rc.mjs'), path.join(dir, 'bin/arp-rc.mjs'));
  await symlink(path.join(PROJECT_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `npx --offline arp-rc ...args` in the package copy. */
async function npx(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run('npx', ['--offline', 'arp-rc', ...args], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('the arp-rc bin', () => {
  it('names the bin in package.json', async () => {
    const manifest = JSON.parse(await readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8'));
    expect(manifest.bin).toEqual({ 'arp-rc': 'bin/arp-rc.mjs' });
  });

  it('says how to build when dist/ is missing (exit 127), then runs the built CLI through npx', async () => {
    const unbuilt = await arpRc(['--help'], { command: [path.join(dir, 'bin/arp-rc.mjs')], cwd: dir });
    expect(unbuilt).toEqual({
      code: 127,
      stdout: '',
      stderr:
        `arp-rc: the CLI is not built (${path.join(dir, 'dist/cli/main.js')} is missing).\n` +
        `Build it once with: npm run build   (in ${dir}/)\n`,
    });

    await writeFile(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: path.join(PROJECT_ROOT, 'tsconfig.build.json'),
        compilerOptions: { rootDir: path.join(PROJECT_ROOT, 'src'), outDir: path.join(dir, 'dist') },
        include: [],
        files: [path.join(PROJECT_ROOT, 'src/cli/main.ts')],
      }),
    );
    await run(process.execPath, [path.join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir]);

    expect(await npx(['--help'])).toEqual({ code: 0, stderr: '', stdout: overview(COMMANDS) });

    const t = await newApp();
    const url = await serve(t);
    const started = await npx(['runs', 'start', '--type', 'composite.x', '--json'], { RC_URL: url });
    expect(started).toEqual({
      code: 0,
      stderr: '',
      stdout: `${(await t.request({ method: 'GET', url: '/v1/runs/run_1' })).body}\n`,
    });
    expect(await npx(['runs', 'get', 'nope', '--url', url])).toMatchObject({ code: 1, stdout: '' });
  }, 120_000);
});
