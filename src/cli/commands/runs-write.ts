/** `arp-rc runs start` (optionally waiting for the Run to end) and `arp-rc runs cancel ID`. */
import type { NodeRun, NodeRunsCreateResponse, Run, RunStartRequest } from '../../gen/contract.js';
import { segment } from '../client.js';
import { type Command, type Context, str } from '../command.js';
import { EXIT, type ExitCode, UsageError } from '../errors.js';
import { duration, runDetails } from '../render.js';
import { followToEnd, printer } from './events.js';

type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function parseJson(what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${what}: not valid JSON (${(error as Error).message})`);
  }
}

interface StartPlan {
  readonly request: RunStartRequest;
  /** NodeRuns to create under the root once the Run exists (`node_runs` of a request file). */
  readonly nodeRuns: unknown[];
}

/**
 * The request from the flags, or from a file holding either a RunStartRequest or, like
 * scripts/request.json, `{"run": RunStartRequest, "node_runs": [NodeRunCreateSpec, ...]}`.
 * The service validates the request itself; only what the CLI must read is checked here.
 */
async function plan(ctx: Context): Promise<StartPlan> {
  const { values } = ctx;
  const file = str(values, 'file');
  const type = str(values, 'type');
  let request: JsonObject;
  let nodeRuns: unknown[] = [];
  if (file !== undefined) {
    for (const flag of ['type', 'version', 'input']) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} cannot be used with --file`);
    }
    let text: string;
    try {
      text = await ctx.readFile(file);
    } catch (error) {
      throw new UsageError(`--file: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
    const content = parseJson(file, text);
    if (!isObject(content)) throw new UsageError(`${file}: expected a JSON object`);
    if ('run' in content) {
      if (!isObject(content.run)) throw new UsageError(`${file}: "run" must be an object`);
      if (content.node_runs !== undefined && !Array.isArray(content.node_runs)) {
        throw new UsageError(`${file}: "node_runs" must be an array`);
      }
      request = content.run;
      nodeRuns = (content.node_runs as unknown[] | undefined) ?? [];
    } else {
      request = content;
    }
  } else if (type !== undefined) {
    const input = parseJson('--input', str(values, 'input') ?? '{}');
    if (!isObject(input)) throw new UsageError('--input: expected a JSON object');
    request = {
      root_node_type_ref: { node_type_id: type, version: str(values, 'version') ?? '1.0.0' },
      input,
    };
  } else {
    throw new UsageError('runs start needs --type (with --input) or --file');
  }
  const runId = str(values, 'run-id');
  const tenant = str(values, 'tenant');
  if (runId !== undefined) request = { ...request, run_id: runId };
  if (tenant !== undefined) {
    const context = isObject(request.run_context) ? request.run_context : {};
    request = { ...request, run_context: { ...context, tenant_id: tenant } };
  }
  return { request: request as unknown as RunStartRequest, nodeRuns };
}

const FINAL_EXIT: Record<string, ExitCode> = {
  succeeded: EXIT.ok,
  failed: EXIT.runFailed,
  canceled: EXIT.runCanceled,
};

/** Creates a request file's `node_runs` under the new Run's root NodeRun. */
async function createUnderRoot(ctx: Context, run: Run, nodeRuns: unknown[]): Promise<NodeRun[]> {
  const body = { run_id: run.run_id, parent_node_run_id: run.root_node_run_id, node_runs: nodeRuns };
  try {
    const answer = await ctx.client.json<NodeRunsCreateResponse>('POST', '/v1/node-runs', {
      body,
      signal: ctx.signal,
    });
    return answer.node_runs;
  } catch (error) {
    // The Run exists now; without its id the user could not clean it up.
    ctx.err(`arp-rc: Run ${run.run_id} was started, but the file's node_runs were not created:`);
    throw error;
  }
}

function printStarted(ctx: Context, run: Run, rootType: string, created: readonly NodeRun[]): void {
  ctx.out(runDetails(run, rootType, ctx.style));
  if (created.length === 0) return;
  ctx.out(`\nNodeRuns created under ${run.root_node_run_id}:`);
  for (const n of created) {
    ctx.out(`  ${n.node_run_id}  ${n.node_type_ref.node_type_id}@${n.node_type_ref.version}  ${n.state}`);
  }
}

export const runsStartCommand: Command = {
  words: ['runs', 'start'],
  args: [],
  summary: 'start a Run (--wait: and follow it until it ends)',
  options: {
    type: { type: 'string' },
    version: { type: 'string' },
    input: { type: 'string' },
    file: { type: 'string' },
    'run-id': { type: 'string' },
    tenant: { type: 'string' },
    wait: { type: 'boolean' },
  },
  help: `
Options:
  --type T          the root NodeRun's node type id
  --version V       its version (default 1.0.0)
  --input JSON      the Run's input, a JSON object (default {})
  --file PATH       the whole request from a file instead of --type/--version/--input: a
                    RunStartRequest, or {"run": RunStartRequest, "node_runs": [...]} as in
                    scripts/request.json, whose node_runs are then created under the root NodeRun
  --run-id ID       the Run's id (default: the service picks one)
  --tenant T        run_context.tenant_id
  --wait            follow the Run's events until it ends; the exit code says how it ended:
                    0 succeeded, 4 failed, 5 canceled
  --json            the Run as the service answered it (with --wait: as it ended); when a file
                    created NodeRuns, {"run": Run, "node_runs": [NodeRun, ...]}

Examples:
  arp-rc runs start --type composite.planner --input '{"goal": "summarise the report"}'
  arp-rc runs start --file scripts/request.json --run-id demo-1
  arp-rc runs start --type atomic.echo --input '{"text": "hi"}' --wait`,
  async run(ctx) {
    const { request, nodeRuns } = await plan(ctx);
    let run = await ctx.client.json<Run>('POST', '/v1/runs', { body: request, signal: ctx.signal });
    const created = nodeRuns.length > 0 ? await createUnderRoot(ctx, run, nodeRuns) : [];
    const rootType = `${request.root_node_type_ref?.node_type_id}@${request.root_node_type_ref?.version}`;
    if (!ctx.json) printStarted(ctx, run, rootType, created);
    const wait = ctx.values.wait === true;
    const print = printer(ctx);
    if (wait) {
      if (!ctx.json) ctx.out('');
      const ended = await followToEnd(ctx, run.run_id, undefined, (line, event) => {
        if (!ctx.json) print(line, event);
      });
      if (!ended) return EXIT.interrupted;
      run = ended;
    }
    if (ctx.json) {
      ctx.out(JSON.stringify(created.length > 0 ? { run, node_runs: created } : run));
    } else if (wait) {
      ctx.out(
        `\nRun ${run.run_id} ${ctx.style.state(run.state)} after ${duration(run.started_at, run.ended_at)}`,
      );
    }
    return wait ? FINAL_EXIT[run.state]! : EXIT.ok;
  },
};

export const runsCancelCommand: Command = {
  words: ['runs', 'cancel'],
  args: ['RUN_ID'],
  summary: 'cancel a Run and every unfinished NodeRun in it',
  options: {},
  help: `
Prints the Run as it is after the cancel. Canceling a Run that has already ended changes nothing
and succeeds. --json prints the Run as the service answered it.

Example:
  arp-rc runs cancel run_1`,
  async run(ctx) {
    const path = `/v1/runs/${segment(ctx.args[0]!)}:cancel`;
    const run = await ctx.client.json<Run>('POST', path, { signal: ctx.signal });
    ctx.out(ctx.json ? JSON.stringify(run) : runDetails(run, undefined, ctx.style));
    return EXIT.ok;
  },
};
