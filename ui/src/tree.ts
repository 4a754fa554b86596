/**
 * The NodeRun tree of a Run, built from flat NodeRun records (the listing, or single reads) through
 * `parent_node_run_id`. Records can arrive in any order and the tree may be partial while a Run is
 * loading: a NodeRun whose parent is not known yet is shown at the top level until it is.
 */
import type { NodeRun, NodeRunState, RunState } from '../../src/gen/contract.js';

export interface TreeNode {
  readonly nodeRun: NodeRun;
  readonly children: TreeNode[];
}

/** Siblings in creation order, then by id (ids are unique, so the order is total). */
export function compareNodeRuns(a: NodeRun, b: NodeRun): number {
  const byTime = (a.created_at ?? '').localeCompare(b.created_at ?? '');
  if (byTime !== 0) return byTime;
  return a.node_run_id < b.node_run_id ? -1 : a.node_run_id > b.node_run_id ? 1 : 0;
}

/** The top-level nodes (the root first when given), each with its descendants. */
export function buildTree(nodeRuns: Iterable<NodeRun>, rootId?: string): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const nodeRun of nodeRuns) nodes.set(nodeRun.node_run_id, { nodeRun, children: [] });
  const top: TreeNode[] = [];
  for (const node of nodes.values()) {
    const parentId = node.nodeRun.parent_node_run_id;
    const parent = parentId === undefined ? undefined : nodes.get(parentId);
    // A parent link that loops back (never written by the coordinator) would hide the nodes.
    if (parent && !isAncestor(node, parent, nodes)) parent.children.push(node);
    else top.push(node);
  }
  const sort = (list: TreeNode[]) => {
    list.sort((a, b) => compareNodeRuns(a.nodeRun, b.nodeRun));
    for (const node of list) sort(node.children);
  };
  sort(top);
  const root = top.findIndex((node) => node.nodeRun.node_run_id === rootId);
  if (root > 0) top.unshift(...top.splice(root, 1));
  return top;
}

function isAncestor(node: TreeNode, of: TreeNode, nodes: Map<string, TreeNode>): boolean {
  const seen = new Set<string>();
  for (let id: string | undefined = of.nodeRun.node_run_id; id !== undefined && !seen.has(id); ) {
    if (id === node.nodeRun.node_run_id) return true;
    seen.add(id);
    id = nodes.get(id)?.nodeRun.parent_node_run_id;
  }
  return false;
}

/** Every id in the tree, depth first (the order a reader meets them). */
export function flatten(tree: readonly TreeNode[]): NodeRun[] {
  const out: NodeRun[] = [];
  const walk = (list: readonly TreeNode[]) => {
    for (const node of list) {
      out.push(node.nodeRun);
      walk(node.children);
    }
  };
  walk(tree);
  return out;
}

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled']);

export const isTerminal = (state: NodeRunState | RunState): boolean => TERMINAL.has(state);

/** How many NodeRuns are in each state, in the order of the life cycle. */
export function stateCounts(nodeRuns: Iterable<NodeRun>): [NodeRunState, number][] {
  const order: NodeRunState[] = ['queued', 'assigned', 'running', 'succeeded', 'failed', 'canceled'];
  const counts = new Map<NodeRunState, number>();
  for (const nodeRun of nodeRuns) counts.set(nodeRun.state, (counts.get(nodeRun.state) ?? 0) + 1);
  return order.filter((state) => counts.has(state)).map((state) => [state, counts.get(state)!]);
}

/** What changed between two readings of the same NodeRuns, for announcing live updates. */
export function stateChanges(
  before: ReadonlyMap<string, NodeRun>,
  after: Iterable<NodeRun>,
): { nodeRun: NodeRun; from: NodeRunState | undefined }[] {
  const changes: { nodeRun: NodeRun; from: NodeRunState | undefined }[] = [];
  for (const nodeRun of after) {
    const from = before.get(nodeRun.node_run_id)?.state;
    if (from !== nodeRun.state) changes.push({ nodeRun, from });
  }
  return changes;
}
