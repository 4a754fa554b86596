/** Where the project's files are, whatever the cwd. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Walks up from this file to the directory holding the project's package.json and openapi/. */
function findProjectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'openapi'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('project root (package.json + openapi/) not found above this file');
    dir = parent;
  }
}

export const PROJECT_ROOT = findProjectRoot();
export const CONTRACT_FILE = path.join(PROJECT_ROOT, 'openapi', 'run-coordinator.yaml');
