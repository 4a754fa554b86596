// Development server: loads .env.local (or else .env) when present and restarts on every change.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

const envFile = ['.env.local', '.env'].find((file) => existsSync(file));
if (envFile) {
  process.loadEnvFile(envFile);
  console.error(`loaded ${envFile}`);
}
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--watch',
    '--watch-path=src',
    '--watch-path=openapi',
    'src/server.ts',
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit', env: process.env },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code) => process.exit(code ?? 0));
