/**
 * The real process (src/server.ts): listens where told, refuses bad configuration with a clear
 * message, and on SIGTERM ends open event streams and exits 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const match = /Server listening at (http:\/\/[^"]+)/.exec(stdout);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
  // Only awaited by tests that expect the server to come up.
  listening.catch(() => {});
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  return { child, listening, exited, output: () => ({ stdout, stderr }) };
}

describe('server process', () => {
  it('serves on the given host and port and exits 0 on SIGTERM, ending open streams', async () => {
    const server = start(['--host', '127.0.0.1', '--port', '0']);
    const base = await server.listening;
    const health = await request(`${base}/v1/health`);
    expect(health.statusCode).toBe(200);
    expect(((await health.body.json()) as { status: string }).status).toBe('ok');

    const run = await request(`${base}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ root_node_type_ref: { node_type_id: 'composite.x', version: '1' }, input: {} }),
    });
    const { run_id: runId } = (await run.body.json()) as { run_id: string };
    const stream = await request(`${base}/v1/runs/${runId}/events?follow=true`);
    expect(stream.statusCode).toBe(200);
    // SIGTERM once the stream has delivered what was committed; it must then end cleanly.
    let text = '';
    let killed = false;
    for await (const chunk of stream.body) {
      text += String(chunk);
      if (!killed && text.split('\n').length > 2) {
        killed = true;
        server.child.kill('SIGTERM');
      }
    }
    expect(killed).toBe(true);
    expect(text.endsWith('\n')).toBe(true);
    expect(
      text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).type),
    ).toEqual(['run_started', 'node_run_assigned']);
    const [code] = await server.exited;
    expect(code).toBe(0);
    expect(server.output().stdout).toContain('shutting down');
  });

  it('refuses invalid configuration with a clear message and exit code 1', async () => {
    const server = start([], { RC_PORT: 'eighty', RC_MAX_FINISHED_RUNS: '-3' });
    const [code] = await server.exited;
    expect(code).toBe(1);
    const { stderr } = server.output();
    expect(stderr).toContain('Invalid configuration');
    expect(stderr).toContain("RC_PORT must be an integer from 0 to 65535, got 'eighty'");
    expect(stderr).toContain('RC_MAX_FINISHED_RUNS');
  });
});
