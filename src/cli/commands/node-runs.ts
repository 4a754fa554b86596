/** `arp-rc node-runs get ID`. */
import type { NodeRun } from '../../gen/contract.js';
import { segment } from '../client.js';
import type { Command } from '../command.js';
import { EXIT } from '../errors.js';
import { nodeRunDetails } from '../render.js';

export const nodeRunsGetCommand: Command = {
  words: ['node-runs', 'get'],
  args: ['NODE_RUN_ID'],
  summary: 'show one NodeRun',
  options: {},
  help: `
Prints the NodeRun's state, type, kind, parent, times, inputs, outputs, evaluation and the error
the coordinator recorded (extensions["rc.completion_error"]). --json prints the NodeRun as the
service answered it.

Examples:
  arp-rc node-runs get node_run_2
  arp-rc node-runs get node_run_2 --json | jq .outputs`,
  async run(ctx) {
    const path = `/v1/node-runs/${segment(ctx.args[0]!)}`;
    const node = await ctx.client.json<NodeRun>('GET', path, { signal: ctx.signal });
    ctx.out(ctx.json ? JSON.stringify(node) : nodeRunDetails(node, ctx.style));
    return EXIT.ok;
  },
};
