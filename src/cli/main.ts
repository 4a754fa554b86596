/**
 * Process entry of `arp-rc`: the only file of the CLI that touches process globals. Ctrl-C aborts
 * the command (an open event stream ends and the exit code is 130); a second Ctrl-C exits at once.
 */
import { readFile } from 'node:fs/promises';
import { runCli } from './cli.js';
import { EXIT } from './errors.js';

const controller = new AbortController();
process.on('SIGINT', () => {
  if (controller.signal.aborted) process.exit(EXIT.interrupted);
  controller.abort();
});

// `arp-rc ... | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.ok);
  throw error;
});

process.exitCode = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdoutIsTTY: process.stdout.isTTY,
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  readFile: (path) => readFile(path, 'utf8'),
  signal: controller.signal,
});
