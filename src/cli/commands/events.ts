/** `arp-rc events RUN_ID`: a Run's RunEvents, as a snapshot or followed until the Run ends. */
import type { Run, RunEvent } from '../../gen/contract.js';
import { segment } from '../client.js';
import { type Command, type Context, str } from '../command.js';
import { EXIT, ServiceError, UnreachableError, UsageError } from '../errors.js';
import { eventLine } from '../render.js';

/** `--after-seq N`: a whole number, 0 or more. */
export function parseSeq(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`--after-seq: expected a whole number, 0 or more, not ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Reads the Run's event stream and hands every line (and its parsed event) to `onLine`. */
export async function readEvents(
  ctx: Context,
  runId: string,
  options: { follow: boolean; afterSeq: number | undefined },
  onLine: (line: string, event: RunEvent | undefined) => void,
): Promise<void> {
  const query = { follow: options.follow ? true : undefined, after_seq: options.afterSeq };
  for await (const line of ctx.client.lines(`/v1/runs/${segment(runId)}/events`, query, ctx.signal)) {
    let event: RunEvent | undefined;
    try {
      event = JSON.parse(line) as RunEvent;
    } catch {
      event = undefined;
    }
    onLine(line, event);
  }
}

const FINISHED = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Follows the Run's events until the service ends the stream, and returns the Run as it ended;
 * undefined after Ctrl-C. The service also ends follow streams when it shuts down: a stream that
 * ends while the Run has not is a lost connection, not the end of the Run.
 */
export async function followToEnd(
  ctx: Context,
  runId: string,
  afterSeq: number | undefined,
  onLine: (line: string, event: RunEvent | undefined) => void,
): Promise<Run | undefined> {
  await readEvents(ctx, runId, { follow: true, afterSeq }, onLine);
  if (ctx.signal.aborted) return undefined;
  const path = `/v1/runs/${segment(runId)}`;
  const lost = (why: string) =>
    new UnreachableError(`${ctx.client.base}${path}/events`, `the stream ended before the Run did (${why})`);
  let run: Run;
  try {
    run = await ctx.client.json<Run>('GET', path, { signal: ctx.signal });
  } catch (error) {
    // A service that is shutting down answers 503 or no longer accepts connections.
    if (error instanceof ServiceError || error instanceof UnreachableError) throw lost(error.message);
    throw error;
  }
  if (!FINISHED.has(run.state)) throw lost(`the Run is ${run.state}`);
  return run;
}

/** Prints a stream's lines: unchanged with --json, else one aligned line per event. */
export function printer(ctx: Context): (line: string, event: RunEvent | undefined) => void {
  return (line, event) => ctx.out(ctx.json || !event ? line : eventLine(event, ctx.style));
}

export const eventsCommand: Command = {
  words: ['events'],
  args: ['RUN_ID'],
  summary: "print a Run's events (--follow: as they happen, until the Run ends)",
  options: {
    follow: { type: 'boolean', short: 'f' },
    'after-seq': { type: 'string' },
  },
  help: `
Options:
  -f, --follow       keep streaming new events until the Run ends (Ctrl-C stops earlier); a
                     stream that ends before the Run does (the service stopped) is exit 3
  --after-seq N      start after event N (resume a stream)
  --json             the NDJSON lines exactly as the service sends them

Each event is printed as "seq  time  type  node_run_id  summary", the summary being the event's
data as key=value pairs ("-" stands for an event of the Run itself).

Examples:
  arp-rc events run_1
  arp-rc events run_1 --follow
  arp-rc events run_1 --after-seq 3 --json | jq .type`,
  async run(ctx) {
    const afterSeq = parseSeq(str(ctx.values, 'after-seq'));
    const [runId] = ctx.args;
    if (ctx.values.follow === true) await followToEnd(ctx, runId!, afterSeq, printer(ctx));
    else await readEvents(ctx, runId!, { follow: false, afterSeq }, printer(ctx));
    return ctx.signal.aborted ? EXIT.interrupted : EXIT.ok;
  },
};
