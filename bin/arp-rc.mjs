#!/usr/bin/env node
// The `arp-rc` bin: runs the compiled CLI (dist/cli/main.js). In a clone that has not been built
// yet, it says how to build instead of failing on a missing module.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(
    `arp-rc: the CLI is not built (${fileURLToPath(main)} is missing).\n` +
      `Build it once with: npm run build   (in ${root})\n`,
  );
  process.exit(127);
}
await import(main.href);
