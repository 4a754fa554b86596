// `npm start` runs this first: build dist/ when it is missing or older than any source file, and
// with --ui the Run inspector into dist/ui when it is missing or older than any file under ui/.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** Runs `args` with node (from the root) when `output` is missing or older than `sourceTime`. */
function rebuild(what, output, sourceTime, args) {
  if (existsSync(output) && sourceTime <= statSync(output).mtimeMs) return;
  console.error(`building ${what} ...`);
  execFileSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
}

rebuild(
  'dist/',
  join(root, 'dist/server.js'),
  Math.max(newest(join(root, 'src')), statSync(join(root, 'openapi/run-coordinator.yaml')).mtimeMs),
  [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')],
);
if (process.argv.includes('--ui')) {
  rebuild('dist/ui', join(root, 'dist/ui/index.html'), newest(join(root, 'ui')), [
    join(root, 'node_modules/vite/bin/vite.js'),
    'build',
    'ui',
    '--logLevel',
    'warn',
  ]);
}
