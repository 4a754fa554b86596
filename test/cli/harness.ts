/**
 * Runs the real `arp-rc` as a child process (from source, through tsx) and collects its stdout,
 * stderr and exit code; a running one can be waited on until its output shows something, then
 * signalled. `serve(t)` makes a test app listen on a loopback port for it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, expect } from 'vitest';
import type { TestApp } from '../helpers/app.js';
import { PROJECT_ROOT } from '../helpers/paths.js';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunningCli {
  readonly child: ChildProcess;
  /** Resolves once stdout satisfies `predicate` (checked on every chunk); rejects if the CLI exits first. */
  untilStdout(predicate: (stdout: string) => boolean): Promise<void>;
  readonly done: Promise<CliResult>;
}

const running: ChildProcess[] = [];
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/** The caller's environment without anything that would change what the CLI does. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const { RC_URL: _url, RC_TOKEN: _token, NO_COLOR: _nc, FORCE_COLOR: _fc, ...rest } = process.env;
  return { ...rest, ...env };
}

export interface CliOptions {
  readonly env?: Record<string, string>;
  /** Command and script to run instead of the CLI's source (the built bin, say). */
  readonly command?: readonly string[];
  readonly cwd?: string;
}

export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  const command = options.command ?? ['--import', 'tsx', path.join(PROJECT_ROOT, 'src/cli/main.ts')];
  const child = spawn(process.execPath, [...command, ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: cleanEnv(options.env ?? {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return {
    child,
    done,
    untilStdout: (predicate) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!predicate(stdout)) return;
          child.stdout!.off('data', check);
          resolve();
        };
        child.stdout!.on('data', check);
        done.then(
          (result) =>
            reject(new Error(`arp-rc exited (${result.code}) first:\n${result.stdout}${result.stderr}`)),
          reject,
        );
        check();
      }),
  };
}

/** Runs `arp-rc args` to its end. */
export function arpRc(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** Listens on 127.0.0.1, port 0; the app's base URL. */
export async function serve(t: TestApp): Promise<string> {
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  if (!address || typeof address === 'string') throw new Error('not listening on a port');
  return `http://127.0.0.1:${address.port}`;
}

/** An ErrorEnvelope reported on stderr with the answer's request id, and nothing on stdout. */
export function expectServiceError(result: CliResult, line: string, status: number, details?: unknown): void {
  const detailsLine = details === undefined ? '' : `  details: ${JSON.stringify(details)}\n`;
  expect(result).toEqual({
    code: 1,
    stdout: '',
    stderr: expect.stringMatching(
      new RegExp(
        `^arp-rc: ${literal(line)} \\(HTTP ${status}, request id [\\w.:-]+\\)\\n${literal(detailsLine)}$`,
      ),
    ),
  });
}

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
