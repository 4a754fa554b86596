/**
 * `--help` for every command, and every usage error (exit 2) reported before anything is sent: the
 * service URL given to these runs refuses connections, so a request would show up as exit 3.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/cli.js';
import { commandHelp, groupHelp, overview } from '../../src/cli/help.js';
import { closedPortUrl } from '../helpers/executors.js';
import { arpRc } from './harness.js';

let url: string;
let dir: string;
beforeAll(async () => {
  url = await closedPortUrl();
  dir = await mkdtemp(path.join(tmpdir(), 'arp-rc-usage-'));
  await writeFile(path.join(dir, 'list.json'), '[1, 2]');
  await writeFile(path.join(dir, 'broken.json'), '{"run": ');
  await writeFile(path.join(dir, 'runs.json'), '{"run": {}, "node_runs": {}}');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('help', () => {
  it('arp-rc --help lists the commands, the options, the environment and the exit codes', async () => {
    const result = await arpRc(['--help']);
    expect(result).toEqual({ code: 0, stderr: '', stdout: `${overview(COMMANDS)}` });
    for (const line of [
      '  runs list                  list Runs, newest first',
      '  runs get RUN_ID            show a Run and its NodeRun tree',
      '  node-runs get NODE_RUN_ID  show one NodeRun',
      '  --url URL        the Run Coordinator (env RC_URL; default http://127.0.0.1:8081)',
      '  --token TOKEN    send "Authorization: Bearer TOKEN" (env RC_TOKEN)',
      '  3    cannot reach the service: connection refused, DNS failure, reset or timeout',
      '  4    runs start --wait: the Run ended failed',
      '  5    runs start --wait: the Run ended canceled',
    ]) {
      expect(result.stdout.split('\n')).toContain(line);
    }
    expect(await arpRc(['help'])).toEqual(result);
    expect(await arpRc(['-h'])).toEqual(result);
  });

  it.each(COMMANDS.map((c) => [c.words.join(' '), c] as const))('arp-rc %s --help', async (_, command) => {
    const result = await arpRc([...command.words, '--help']);
    expect(result).toEqual({ code: 0, stderr: '', stdout: commandHelp(command) });
    expect(result.stdout).toMatch(new RegExp(`^Usage: arp-rc ${command.words.join(' ')} `));
    expect(result.stdout).toContain('Exit codes:');
    expect(await arpRc(['help', ...command.words])).toEqual(result);
  });

  it('arp-rc runs --help lists the commands of the group', async () => {
    expect(await arpRc(['runs', '--help'])).toEqual({
      code: 0,
      stderr: '',
      stdout: groupHelp('runs', COMMANDS),
    });
  });
});

describe('usage errors: exit 2, nothing sent', () => {
  it('without a command prints the overview on stderr', async () => {
    expect(await arpRc([])).toEqual({ code: 2, stdout: '', stderr: overview(COMMANDS) });
  });

  it.each([
    [['frobnicate'], 'arp-rc: unknown command: frobnicate\nRun "arp-rc --help" for the commands.\n'],
    [
      ['runs', 'frobnicate'],
      'arp-rc: unknown command: runs frobnicate\nRun "arp-rc --help" for the commands.\n',
    ],
    [['help', 'nope'], 'arp-rc: no such command: nope\nRun "arp-rc --help" for the commands.\n'],
    [['runs'], `arp-rc: "arp-rc runs" needs a command\n\n${groupHelp('runs', COMMANDS)}`],
  ])('%j', async (args, stderr) => {
    expect(await arpRc([...args, '--url', url])).toEqual({ code: 2, stdout: '', stderr });
  });

  it.each([
    [['runs', 'get'], 'expected RUN_ID, got none'],
    [['runs', 'get', 'a', 'b'], 'expected RUN_ID, got a b'],
    [['runs', 'start'], 'runs start needs --type (with --input) or --file'],
    [['runs', 'start', '--type', 't', '--input', '{'], `--input: not valid JSON (${jsonError('{')})`],
    [['runs', 'start', '--type', 't', '--input', '[1]'], '--input: expected a JSON object'],
    [['runs', 'start', '--file', 'nope.json'], '--file: cannot read nope.json: ENOENT'],
    [['runs', 'start', '--file', 'package.json', '--type', 't'], '--type cannot be used with --file'],
    [['runs', 'start', '--file', '{dir}/list.json'], '{dir}/list.json: expected a JSON object'],
    [
      ['runs', 'start', '--file', '{dir}/broken.json'],
      `{dir}/broken.json: not valid JSON (${jsonError('{"run": ')})`,
    ],
    [['runs', 'start', '--file', '{dir}/runs.json'], '{dir}/runs.json: "node_runs" must be an array'],
    [['runs', 'cancel', 'r', '--timeout', '0'], '--timeout: expected a number of seconds above 0, not 0'],
    [
      ['node-runs', 'get', 'n', '--url', 'ftp://x'],
      '--url: only http:// and https:// URLs are supported, not ftp:',
    ],
    [['node-runs', 'get', 'n', '--url', 'not a url'], '--url: not a URL: not a url'],
  ])('%j', async (args, message) => {
    const command = args[0] === 'node-runs' ? 'node-runs get' : `runs ${args[1]}`;
    const inDir = (text: string) => text.replaceAll('{dir}', dir);
    // The last --url wins, so a bad --url in `args` is the one used.
    expect(await arpRc(['--url', url, ...args.map(inDir)])).toEqual({
      code: 2,
      stdout: '',
      stderr: `arp-rc: ${inDir(message)}\nRun "arp-rc ${command} --help" for usage.\n`,
    });
  });
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  return '';
}
