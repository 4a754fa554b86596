/** `arp-rc events RUN_ID`: a Run's RunEvents, as a snapshot or followed until the Run ends. */
import type { RunEvent } from '../../gen/contract.js';
import { segment } from '../client.js';
import { type Command, type Context, str } from '../command.js';
import { EXIT, UsageError } from '../errors.js';
import { eventLine } from '../render.js';

/** `--after-seq N`: a whole number, 0 or more. */
export function parseSeq(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`--after-seq: expected a whole number, 0 or more, not ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * Reads the Run's event stream and hands every line (and its parsed event) to `onLine`. Resolves
 * with the last seq seen when the service ends the stream, or when Ctrl-C aborts it.
 */
export async function readEvents(
  ctx: Context,
  runId: string,
  options: { follow: boolean; afterSeq: number | undefined },
  onLine: (line: string, event: RunEvent | undefined) => void,
): Promise<number | undefined> {
  let last = options.afterSeq;
  const query = { follow: options.follow ? true : undefined, after_seq: options.afterSeq };
  for await (const line of ctx.client.lines(`/v1/runs/${segment(runId)}/events`, query, ctx.signal)) {
    let event: RunEvent | undefined;
    try {
      event = JSON.parse(line) as RunEvent;
      last = event.seq;
    } catch {
      event = undefined;
    }
    onLine(line, event);
  }
  return last;
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
  -f, --follow       keep streaming new events until the Run ends (Ctrl-C stops earlier)
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
    await readEvents(ctx, runId!, { follow: ctx.values.follow === true, afterSeq }, printer(ctx));
    return ctx.signal.aborted ? EXIT.interrupted : EXIT.ok;
  },
};
