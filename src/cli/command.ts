/**
 * What a command is: its words, arguments, options, help, and a `run` that returns an exit code.
 * Commands write data to `out` and nothing else to stdout; everything else goes to `err`.
 */
import type { ParseArgsConfig } from 'node:util';
import type { RcClient } from './client.js';
import type { ExitCode } from './errors.js';
import type { Style } from './render.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export interface Context {
  readonly client: RcClient;
  readonly values: Values;
  readonly args: readonly string[];
  readonly json: boolean;
  readonly style: Style;
  /** Aborted by Ctrl-C. */
  readonly signal: AbortSignal;
  out(text: string): void;
  err(text: string): void;
  readFile(path: string): Promise<string>;
}

export interface Command {
  /** `['runs', 'list']`. */
  readonly words: readonly string[];
  /** Names of the positional arguments, all required: `['RUN_ID']`. */
  readonly args: readonly string[];
  readonly summary: string;
  readonly options: Options;
  /** Usage details after the synopsis: options, examples, what is printed. */
  readonly help: string;
  run(ctx: Context): Promise<ExitCode>;
}

export const str = (values: Values, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};
