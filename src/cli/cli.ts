/**
 * `runCli(argv, io)`: finds the command, parses its flags, runs it, and turns every expected
 * failure into a message on stderr and an exit code. No process globals: src/cli/main.ts passes
 * the environment, the streams and the Ctrl-C signal in.
 */
import { parseArgs } from 'node:util';
import { RcClient } from './client.js';
import type { Command, Context, Options, Values } from './command.js';
import { eventsCommand } from './commands/events.js';
import { nodeRunsGetCommand } from './commands/node-runs.js';
import { runsGetCommand, runsListCommand } from './commands/runs-read.js';
import { runsCancelCommand, runsStartCommand } from './commands/runs-write.js';
import { EXIT, type ExitCode, ServiceError, UnreachableError, UsageError } from './errors.js';
import { commandHelp, DEFAULT_URL, groupHelp, overview } from './help.js';
import { styleFor } from './render.js';

export const COMMANDS: readonly Command[] = [
  runsListCommand,
  runsGetCommand,
  runsStartCommand,
  runsCancelCommand,
  eventsCommand,
  nodeRunsGetCommand,
];

const GROUPS = new Set(COMMANDS.filter((c) => c.words.length > 1).map((c) => c.words[0]!));

const GLOBAL_OPTIONS: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export interface Io {
  readonly argv: readonly string[];
  readonly env: Record<string, string | undefined>;
  readonly stdoutIsTTY: boolean | undefined;
  out(text: string): void;
  err(text: string): void;
  readFile(path: string): Promise<string>;
  /** Aborted by Ctrl-C. */
  readonly signal: AbortSignal;
}

interface Located {
  readonly words: string[];
  /** argv without the command words. */
  readonly rest: string[];
}

/** The command words are the first arguments that are neither an option nor a global option's value. */
function locate(argv: readonly string[]): Located {
  const words: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const wanted = words.length === 0 || (words.length === 1 && GROUPS.has(words[0]!));
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (arg.startsWith('-')) {
      rest.push(arg);
      const name = arg.replace(/^--?/, '');
      if (['url', 'token', 'timeout'].includes(name) && i + 1 < argv.length) rest.push(argv[++i]!);
    } else if (wanted) {
      words.push(arg);
    } else {
      rest.push(arg);
    }
  }
  return { words, rest };
}

function parse(command: Command, rest: string[]): { values: Values; positionals: string[] } {
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  try {
    const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (!code?.startsWith('ERR_PARSE_ARGS')) throw error;
    // node:util's messages are written for programmers; say the same thing shorter.
    const option = /'(--?[^' ]+)/.exec(message)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${option}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = option.replace(/^-+/, '');
      const declared = options[name] ?? Object.values(options).find((o) => o.short === name);
      throw new UsageError(
        declared?.type === 'string' ? `${option} needs a value` : `${option} takes no value`,
      );
    }
    throw new UsageError(message);
  }
}

function timeoutMs(text: string | undefined): number {
  if (text === undefined) return 30_000;
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds <= 0) {
    throw new UsageError(`--timeout: expected a number of seconds above 0, not ${text}`);
  }
  return Math.round(seconds * 1000);
}

async function execute(command: Command, rest: string[], io: Io): Promise<ExitCode> {
  const { values, positionals } = parse(command, rest);
  if (values.help) {
    io.out(commandHelp(command).trimEnd());
    return EXIT.ok;
  }
  if (positionals.length !== command.args.length) {
    const expected = command.args.length === 0 ? 'no arguments' : command.args.join(' ');
    throw new UsageError(`expected ${expected}, got ${positionals.length ? positionals.join(' ') : 'none'}`);
  }
  const token = (values.token as string | undefined) ?? io.env.RC_TOKEN;
  const client = new RcClient({
    url: (values.url as string | undefined) ?? (io.env.RC_URL || DEFAULT_URL),
    ...(token ? { token } : {}),
    timeoutMs: timeoutMs(values.timeout as string | undefined),
  });
  const ctx: Context = {
    client,
    values,
    args: positionals,
    json: values.json === true,
    style: styleFor(io.stdoutIsTTY, io.env),
    signal: io.signal,
    out: io.out,
    err: io.err,
    readFile: io.readFile,
  };
  try {
    return await command.run(ctx);
  } finally {
    await client.close();
  }
}

function report(error: unknown, io: Io, usageHint: string): ExitCode {
  if (error instanceof UsageError) {
    io.err(`arp-rc: ${error.message}\n${usageHint}`);
    return EXIT.usage;
  }
  if (error instanceof ServiceError) {
    const where = [`HTTP ${error.status}`, ...(error.requestId ? [`request id ${error.requestId}`] : [])];
    io.err(`arp-rc: ${error.code}: ${error.message} (${where.join(', ')})`);
    if (error.details) io.err(`  details: ${JSON.stringify(error.details)}`);
    return EXIT.serviceError;
  }
  if (error instanceof UnreachableError) {
    io.err(`arp-rc: ${error.message}`);
    return EXIT.unreachable;
  }
  io.err(
    `arp-rc: unexpected error (a bug in arp-rc; please report it):\n${(error as Error)?.stack ?? error}`,
  );
  return EXIT.bug;
}

/** `arp-rc help [group [command]]`, `arp-rc --help`, `arp-rc runs --help`. */
function help(target: readonly string[], io: Io): ExitCode {
  const command = COMMANDS.find((c) => c.words.join(' ') === target.join(' '));
  if (command) io.out(commandHelp(command).trimEnd());
  else if (target.length === 1 && GROUPS.has(target[0]!)) io.out(groupHelp(target[0]!, COMMANDS).trimEnd());
  else if (target.length === 0) io.out(overview(COMMANDS).trimEnd());
  else {
    io.err(`arp-rc: no such command: ${target.join(' ')}\nRun "arp-rc --help" for the commands.`);
    return EXIT.usage;
  }
  return EXIT.ok;
}

export async function runCli(io: Io): Promise<number> {
  if (io.argv[0] === 'help') return help(locate(io.argv.slice(1)).words, io);
  const { words, rest } = locate(io.argv);
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  const command = COMMANDS.find((c) => c.words.join(' ') === words.join(' '));
  if (!command) {
    if (wantsHelp && (words.length === 0 || (words.length === 1 && GROUPS.has(words[0]!))))
      return help(words, io);
    if (words.length === 0) {
      io.err(overview(COMMANDS).trimEnd());
    } else if (words.length === 1 && GROUPS.has(words[0]!)) {
      io.err(`arp-rc: "arp-rc ${words[0]}" needs a command\n\n${groupHelp(words[0]!, COMMANDS).trimEnd()}`);
    } else {
      io.err(`arp-rc: unknown command: ${words.join(' ')}\nRun "arp-rc --help" for the commands.`);
    }
    return EXIT.usage;
  }
  try {
    return await execute(command, rest, io);
  } catch (error) {
    if (io.signal.aborted) return EXIT.interrupted;
    return report(error, io, `Run "arp-rc ${command.words.join(' ')} --help" for usage.`);
  }
}
