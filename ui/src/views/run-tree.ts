/**
 * The NodeRun tree: nested lists of buttons. Each NodeRun is a button that opens its details
 * (Enter or Space), and a NodeRun with children has a toggle button before it that shows or hides
 * them (`aria-expanded`). Re-rendered whole on each update; focus is put back on the same button.
 */
import type { NodeRun } from '../../../src/gen/contract.js';
import { h, replace } from '../dom.js';
import { elapsed } from '../format.js';
import type { TreeNode } from '../tree.js';
import { stateBadge } from './parts.js';

export interface TreeView {
  readonly element: HTMLElement;
  render(tree: readonly TreeNode[], selected: string | undefined): void;
}

export function treeView(options: {
  readonly collapsed: Set<string>;
  onSelect(nodeRunId: string): void;
  onToggle(): void;
}): TreeView {
  const element = h('ul', { className: 'tree', 'aria-label': 'NodeRuns, as a tree' });
  return {
    element,
    render(tree, selected) {
      const active = document.activeElement as HTMLElement | null;
      const focused = element.contains(active) ? active : null;
      const focusKey = focused ? `${focused.dataset.role}:${focused.dataset.nodeId}` : undefined;
      const now = Date.now();
      replace(
        element,
        tree.map((node) => item(node, selected, now, options)),
      );
      if (focusKey) {
        const [role, id] = focusKey.split(/:(.*)/s);
        for (const button of element.querySelectorAll<HTMLElement>(`[data-role="${role}"]`)) {
          if (button.dataset.nodeId === id) button.focus();
        }
      }
    },
  };
}

function item(
  node: TreeNode,
  selected: string | undefined,
  now: number,
  options: { collapsed: Set<string>; onSelect(id: string): void; onToggle(): void },
): HTMLElement {
  const nodeRun = node.nodeRun;
  const id = nodeRun.node_run_id;
  const open = !options.collapsed.has(id);
  const hasChildren = node.children.length > 0;
  const toggle = hasChildren
    ? h(
        'button',
        {
          type: 'button',
          className: 'toggle',
          'data-role': 'toggle',
          'data-node-id': id,
          'aria-expanded': String(open),
          'aria-label': `${open ? 'Hide' : 'Show'} the ${node.children.length} children of ${label(nodeRun)}`,
          onclick: () => {
            if (open) options.collapsed.add(id);
            else options.collapsed.delete(id);
            options.onToggle();
          },
        },
        h('span', { 'aria-hidden': 'true' }, open ? '▾' : '▸'),
      )
    : h('span', { className: 'toggle-space', 'aria-hidden': 'true' });
  const duration = elapsed(nodeRun.started_at, nodeRun.ended_at, now);
  const button = h(
    'button',
    {
      type: 'button',
      className: 'node',
      'data-role': 'node',
      'data-node-id': id,
      'aria-current': selected === id ? 'true' : undefined,
      onclick: () => options.onSelect(id),
    },
    h('span', { className: 'node-type' }, nodeRun.node_type_ref.node_type_id),
    nodeRun.kind ? h('span', { className: 'kind' }, nodeRun.kind) : null,
    stateBadge(nodeRun.state),
    duration
      ? h(
          'span',
          {
            className: 'duration',
            'data-started': nodeRun.started_at,
            'data-running': duration.running ? '' : undefined,
          },
          duration.text,
        )
      : null,
    h('span', { className: 'node-id' }, id),
  );
  return h(
    'li',
    { 'data-node-id': id, 'data-state': nodeRun.state },
    h('div', { className: 'node-row' }, toggle, button),
    hasChildren && open
      ? h(
          'ul',
          { 'aria-label': `Children of ${label(nodeRun)}` },
          node.children.map((child) => item(child, selected, now, options)),
        )
      : null,
  );
}

const label = (nodeRun: NodeRun) => `${nodeRun.node_type_ref.node_type_id} ${nodeRun.node_run_id}`;
