/** The NodeRun tree of the inspector (ui/src/tree.ts), built from records in any order. */
import { describe, expect, it } from 'vitest';
import type { NodeRun } from '../../src/gen/contract.js';
import { buildTree, flatten, stateChanges, stateCounts, type TreeNode } from '../../ui/src/tree.js';

const nodeRun = (id: string, parent?: string, extra: Partial<NodeRun> = {}): NodeRun => ({
  node_run_id: id,
  run_id: 'run_1',
  node_type_ref: { node_type_id: parent ? 'atomic.echo' : 'composite.plan', version: '1' },
  state: 'queued',
  created_at: '2026-01-01T00:00:00.000Z',
  ...(parent ? { parent_node_run_id: parent } : {}),
  ...extra,
});

const shape = (tree: readonly TreeNode[]): unknown =>
  tree.map((node) =>
    node.children.length ? { [node.nodeRun.node_run_id]: shape(node.children) } : node.nodeRun.node_run_id,
  );

describe('buildTree', () => {
  it('links children to parents whatever order the records come in, siblings by creation time then id', () => {
    const records = [
      nodeRun('c', 'b', { created_at: '2026-01-01T00:00:02.000Z' }),
      nodeRun('b2', 'root', { created_at: '2026-01-01T00:00:01.000Z' }),
      nodeRun('b', 'root', { created_at: '2026-01-01T00:00:01.000Z' }),
      nodeRun('a', 'root', { created_at: '2026-01-01T00:00:00.500Z' }),
      nodeRun('root'),
    ];
    expect(shape(buildTree(records, 'root'))).toEqual([{ root: ['a', { b: ['c'] }, 'b2'] }]);
    expect(flatten(buildTree(records, 'root')).map((n) => n.node_run_id)).toEqual([
      'root',
      'a',
      'b',
      'c',
      'b2',
    ]);
  });

  it('shows a NodeRun whose parent is not loaded yet at the top level, after the root', () => {
    const tree = buildTree(
      [nodeRun('orphan', 'missing', { created_at: '2025-01-01T00:00:00.000Z' }), nodeRun('root')],
      'root',
    );
    expect(shape(tree)).toEqual(['root', 'orphan']);
  });

  it('keeps NodeRuns whose parent links loop', () => {
    const tree = buildTree([nodeRun('x', 'y'), nodeRun('y', 'x')]);
    expect(
      flatten(tree)
        .map((n) => n.node_run_id)
        .sort(),
    ).toEqual(['x', 'y']);
  });
});

describe('stateCounts and stateChanges', () => {
  it('counts NodeRuns by state in life-cycle order', () => {
    const records = [
      nodeRun('a', undefined, { state: 'succeeded' }),
      nodeRun('b', 'a', { state: 'running' }),
      nodeRun('c', 'a', { state: 'succeeded' }),
    ];
    expect(stateCounts(records)).toEqual([
      ['running', 1],
      ['succeeded', 2],
    ]);
  });

  it('reports new NodeRuns and changed states only', () => {
    const before = new Map([
      ['a', nodeRun('a', undefined, { state: 'running' })],
      ['b', nodeRun('b', 'a', { state: 'running' })],
    ]);
    const after = [
      nodeRun('a', undefined, { state: 'running' }),
      nodeRun('b', 'a', { state: 'succeeded' }),
      nodeRun('c', 'a'),
    ];
    expect(
      stateChanges(before, after).map(({ nodeRun, from }) => [nodeRun.node_run_id, from, nodeRun.state]),
    ).toEqual([
      ['b', 'running', 'succeeded'],
      ['c', undefined, 'queued'],
    ]);
  });
});
