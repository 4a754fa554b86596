/**
 * The Run page: the Run's summary with a Cancel button, its NodeRun tree with a detail panel, and
 * the event timeline. It follows `GET /v1/runs/{id}/events?follow=true` (src/follow.ts); each batch
 * of events is added to the timeline and makes the page read the Run and its NodeRuns again (at
 * most one read in flight, one more queued), because some changes have no event of their own (a
 * non-root composite's completion, the NodeRuns a cancel ends). State changes are announced to
 * screen readers.
 */
import type { NodeRun, Run } from '../../../src/gen/contract.js';
import { ApiError, describeError, isUnauthorized } from '../api.js';
import { coalesced } from '../coalesce.js';
import { h, replace } from '../dom.js';
import { type FollowStatus, followEvents } from '../follow.js';
import { elapsed, formatDuration, formatTime } from '../format.js';
import { buildTree, isTerminal, stateChanges, stateCounts } from '../tree.js';
import { notice, stateBadge } from './parts.js';
import { nodeRunDetail } from './run-detail.js';
import { timelineView } from './run-timeline.js';
import { treeView } from './run-tree.js';
import type { PageContext } from './runs.js';

const STATUS_TEXT: Record<FollowStatus, string> = {
  connecting: 'Connecting to the event stream…',
  live: 'Live: following the Run’s events.',
  reconnecting: 'The event stream dropped; reconnecting…',
  ended: 'The Run is finished; all its events are shown.',
};

export function runPage(main: HTMLElement, ctx: PageContext, runId: string): () => void {
  const aborter = new AbortController();
  const { signal } = aborter;
  let run: Run | undefined;
  let nodeRuns = new Map<string, NodeRun>();
  let selected: string | undefined;
  let shownDetail = '';
  /** False once the coordinator turned out to have no listing API: NodeRuns are then read one by one. */
  let listing = true;
  const named = new Set<string>();
  const collapsed = new Set<string>();

  const facts = h('dl', { className: 'facts run-facts' });
  const runState = h('div', { className: 'run-state', 'aria-live': 'polite' });
  const liveStatus = h('p', { className: 'status-line', role: 'status' });
  const problem = h('div');
  const cancelButton = h('button', { type: 'button', className: 'danger', disabled: true }, 'Cancel run');
  const counts = h('p', { className: 'tree-counts' });
  const tree = treeView({ collapsed, onSelect: select, onToggle: renderTree });
  const detailBody = h('div', { className: 'detail-body' }, h('p', {}, 'Choose a NodeRun in the tree.'));
  const detailHeading = h('h2', { id: 'detail-heading', tabindex: -1 }, 'NodeRun details');
  // From the timeline the details may be far away (below the tree on a phone): focus moves there.
  const timeline = timelineView((nodeRunId) => {
    select(nodeRunId);
    detailHeading.focus();
  });

  function select(nodeRunId: string): void {
    selected = nodeRunId;
    renderTree();
    renderDetail();
  }

  // Reads of the Run and its NodeRuns: one at a time; a request during one queues one more.
  const refresh = coalesced(read, (error) => console.error(error));

  async function read(): Promise<void> {
    try {
      const nextRun = await ctx.api.getRun(runId, signal);
      const list = await readNodeRuns(nextRun);
      if (signal.aborted) return;
      announceChanges(nextRun, list);
      run = nextRun;
      nodeRuns = new Map(list.map((nodeRun) => [nodeRun.node_run_id, nodeRun]));
      selected ??= run.root_node_run_id;
      replace(problem);
      renderSummary();
      renderTree();
      renderDetail();
    } catch (error) {
      if (signal.aborted || isUnauthorized(error)) return;
      if (error instanceof ApiError && error.code === 'run_not_found') {
        replace(main, h('h1', {}, 'Run not found'), notice(`There is no Run ${runId}.`), backLink());
        aborter.abort();
        return;
      }
      replace(problem, notice(`The Run could not be read: ${describeError(error)}`));
    }
  }

  async function readNodeRuns(nextRun: Run): Promise<NodeRun[]> {
    if (listing) {
      try {
        return await ctx.api.listNodeRuns(runId, signal);
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404 && error.code === 'not_found')) throw error;
        listing = false;
      }
    }
    const ids = new Set([nextRun.root_node_run_id, ...named]);
    return Promise.all([...ids].map((id) => ctx.api.getNodeRun(id, signal)));
  }

  function announceChanges(nextRun: Run, list: readonly NodeRun[]): void {
    if (!run) return;
    const messages = stateChanges(nodeRuns, list).map(
      ({ nodeRun }) => `${nodeRun.node_type_ref.node_type_id} ${nodeRun.node_run_id} is ${nodeRun.state}`,
    );
    if (nextRun.state !== run.state) messages.unshift(`The Run is ${nextRun.state}`);
    if (messages.length === 0) return;
    const shown = messages.slice(0, 3).join('; ');
    ctx.announce(messages.length > 3 ? `${shown}; and ${messages.length - 3} more changes` : shown);
  }

  function renderSummary(): void {
    if (!run) return;
    const root = nodeRuns.get(run.root_node_run_id);
    const error = run.extensions?.['rc.completion_error'] as { code?: string; message?: string } | undefined;
    const duration = elapsed(run.started_at, run.ended_at, Date.now());
    replace(runState, stateBadge(run.state));
    const row = (term: string, value: Node | string) => [h('dt', {}, term), h('dd', {}, value)];
    replace(
      facts,
      row('State', runState),
      row('Root node type', root ? root.node_type_ref.node_type_id : '…'),
      row('Tenant', run.run_context?.tenant_id ?? '—'),
      row('Started', formatTime(run.started_at)),
      row('Ended', formatTime(run.ended_at)),
      row(
        'Duration',
        h(
          'span',
          {
            className: 'duration',
            'data-started': run.started_at,
            'data-running': duration?.running ? '' : undefined,
          },
          duration?.text ?? '—',
        ),
      ),
      error ? row('Why it ended', `${error.code ?? 'error'}: ${error.message ?? ''}`) : [],
    );
    cancelButton.disabled = isTerminal(run.state);
    cancelButton.title = isTerminal(run.state) ? 'The Run is finished' : '';
  }

  function renderTree(): void {
    tree.render(buildTree(nodeRuns.values(), run?.root_node_run_id), selected);
    replace(
      counts,
      `${nodeRuns.size} NodeRun${nodeRuns.size === 1 ? '' : 's'}: `,
      stateCounts(nodeRuns.values())
        .map(([state, n]) => `${n} ${state}`)
        .join(', '),
    );
  }

  /** Collapses every NodeRun that has children, or expands them all. */
  function setAllCollapsed(collapse: boolean): void {
    collapsed.clear();
    if (collapse) {
      for (const nodeRun of nodeRuns.values()) {
        if (nodeRun.parent_node_run_id) collapsed.add(nodeRun.parent_node_run_id);
      }
    }
    renderTree();
  }

  function renderDetail(): void {
    const nodeRun = selected === undefined ? undefined : nodeRuns.get(selected);
    const key = nodeRun ? JSON.stringify(nodeRun) : `missing:${selected}`;
    if (key === shownDetail) return;
    shownDetail = key;
    if (!nodeRun) {
      replace(
        detailBody,
        h('p', {}, selected ? `NodeRun ${selected} is not loaded yet.` : 'Choose a NodeRun.'),
      );
      return;
    }
    replace(detailBody, nodeRunDetail(nodeRun, select));
  }

  cancelButton.addEventListener('click', async () => {
    if (!run || isTerminal(run.state)) return;
    if (!window.confirm(`Cancel Run ${runId}? Every unfinished NodeRun in it will be canceled.`)) return;
    cancelButton.disabled = true;
    try {
      const canceled = await ctx.api.cancelRun(runId);
      ctx.announce(`The Run is ${canceled.state}`);
      refresh();
    } catch (error) {
      cancelButton.disabled = false;
      if (!isUnauthorized(error))
        replace(problem, notice(`The Run could not be canceled: ${describeError(error)}`));
    }
  });

  // Durations of what is still running count up without reading anything again.
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const span of main.querySelectorAll<HTMLElement>('.duration[data-running]')) {
      const started = Date.parse(span.dataset.started ?? '');
      if (!Number.isNaN(started)) span.textContent = formatDuration(Math.max(0, now - started));
    }
  }, 1000);

  replace(
    main,
    backLink(),
    h('h1', {}, 'Run ', h('code', { className: 'run-id' }, runId)),
    h(
      'section',
      { className: 'run-summary', 'aria-label': 'Run summary' },
      facts,
      h(
        'div',
        { className: 'actions' },
        h('button', { type: 'button', onclick: () => refresh() }, 'Refresh'),
        cancelButton,
      ),
      liveStatus,
      problem,
    ),
    h(
      'div',
      { className: 'run-grid' },
      h(
        'section',
        { className: 'tree-panel', 'aria-labelledby': 'tree-heading' },
        h('h2', { id: 'tree-heading' }, 'NodeRuns'),
        counts,
        h(
          'div',
          { className: 'actions tree-actions' },
          h('button', { type: 'button', onclick: () => setAllCollapsed(false) }, 'Expand all'),
          h('button', { type: 'button', onclick: () => setAllCollapsed(true) }, 'Collapse all'),
        ),
        tree.element,
      ),
      h('section', { className: 'detail', 'aria-labelledby': 'detail-heading' }, detailHeading, detailBody),
    ),
    timeline.element,
  );

  refresh();
  followEvents({
    open: (afterSeq, streamSignal) => ctx.api.followRunEvents(runId, afterSeq, streamSignal),
    onEvents: (events) => {
      timeline.append(events);
      for (const event of events) if (event.node_run_id) named.add(event.node_run_id);
      refresh();
    },
    isFinished: async () => isTerminal((await ctx.api.getRun(runId, signal)).state),
    onStatus: (status) => {
      liveStatus.textContent = STATUS_TEXT[status];
      if (status === 'ended') refresh();
    },
    isFatal: (error) => error instanceof ApiError && [401, 403, 404].includes(error.status),
    wait: (ms, waitSignal) =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        waitSignal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      }),
    signal,
  }).catch((error: unknown) => {
    if (signal.aborted || isUnauthorized(error)) return;
    liveStatus.textContent = `Live updates stopped: ${describeError(error)}`;
  });

  return () => {
    aborter.abort();
    clearInterval(ticker);
  };
}

const backLink = () => h('p', { className: 'back' }, h('a', { href: '#/runs' }, '← All Runs'));
