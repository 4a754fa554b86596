/**
 * The list page: Runs newest first (GET /rc/v1/runs) with the listing's filters, counts by state
 * (GET /rc/v1/run-counts), pages by cursor, and a refresh button with optional auto-refresh.
 */
import type { Api, RunCounts, RunList } from '../api.js';
import { describeError, isUnauthorized } from '../api.js';
import { h, replace, uid } from '../dom.js';
import { elapsed, formatTime, isoToLocalInput, localInputToIso } from '../format.js';
import { filterParams, RUN_STATES, type RunFilters, runHash, runsHash } from '../routes.js';
import { notice, stateBadge } from './parts.js';

const PAGE_SIZE = 50;
const AUTO_REFRESH_MS = 5000;

export interface PageContext {
  readonly api: Api;
  announce(message: string): void;
}

/** Renders the page into `main`; returns what stops its timers and requests. */
export function runsPage(main: HTMLElement, ctx: PageContext, filters: RunFilters): () => void {
  const aborter = new AbortController();
  let cursors: (string | undefined)[] = [undefined];
  let timer: ReturnType<typeof setInterval> | undefined;

  const countsList = h('ul', { className: 'counts', 'aria-label': 'Runs by state' });
  const body = h('tbody');
  const status = h('p', { className: 'status-line', role: 'status', 'aria-live': 'polite' });
  const problem = h('div');
  const previous = h('button', { type: 'button', disabled: true }, 'Previous page');
  const next = h('button', { type: 'button', disabled: true }, 'Next page');
  const pageLabel = h('span', { className: 'page-label' });

  async function load(announce = false): Promise<void> {
    const cursor = cursors[cursors.length - 1];
    const params = filterParams(filters);
    params.set('limit', String(PAGE_SIZE));
    if (cursor) params.set('cursor', cursor);
    try {
      const [list, counts] = await Promise.all([
        ctx.api.listRuns(params, aborter.signal),
        ctx.api.countRuns(filterParams(filters, false), aborter.signal),
      ]);
      if (aborter.signal.aborted) return;
      replace(problem);
      renderCounts(counts);
      renderRows(list);
      next.disabled = !list.next_cursor;
      next.dataset.cursor = list.next_cursor ?? '';
      previous.disabled = cursors.length <= 1;
      pageLabel.textContent = `Page ${cursors.length}`;
      status.textContent = `${plural(list.items.length, 'Run')} shown, updated ${new Date().toISOString().slice(11, 19)} UTC`;
      if (announce) ctx.announce(`Runs refreshed: ${plural(list.items.length, 'Run')} shown`);
    } catch (error) {
      if (aborter.signal.aborted || isUnauthorized(error)) return;
      replace(problem, notice(`The Runs could not be loaded: ${describeError(error)}`));
    }
  }

  function renderCounts(counts: RunCounts): void {
    replace(
      countsList,
      RUN_STATES.map((state) =>
        h(
          'li',
          {},
          stateBadge(state),
          h('strong', { 'data-count': state }, String(counts.counts[state] ?? 0)),
        ),
      ),
      h('li', { className: 'total' }, 'total ', h('strong', { 'data-count': 'total' }, String(counts.total))),
    );
  }

  function renderRows(list: RunList): void {
    const now = Date.now();
    if (list.items.length === 0) {
      replace(body, h('tr', {}, h('td', { colspan: 6 }, 'No Runs match these filters.')));
      return;
    }
    replace(
      body,
      list.items.map(({ run, root_node_type_id }) =>
        h(
          'tr',
          { 'data-run-id': run.run_id },
          h('th', { scope: 'row', 'data-label': 'Run' }, h('a', { href: runHash(run.run_id) }, run.run_id)),
          h('td', { 'data-label': 'State' }, stateBadge(run.state)),
          h('td', { 'data-label': 'Root node type' }, root_node_type_id),
          h('td', { 'data-label': 'Tenant' }, run.run_context?.tenant_id ?? '—'),
          h('td', { 'data-label': 'Started' }, formatTime(run.started_at)),
          h('td', { 'data-label': 'Duration' }, elapsed(run.started_at, run.ended_at, now)?.text ?? '—'),
        ),
      ),
    );
  }

  previous.addEventListener('click', () => {
    cursors = cursors.slice(0, -1);
    void load();
  });
  next.addEventListener('click', () => {
    if (next.dataset.cursor) cursors = [...cursors, next.dataset.cursor];
    void load();
  });

  const autoId = uid('auto');
  const auto = h('input', { type: 'checkbox', id: autoId });
  auto.addEventListener('change', () => {
    clearInterval(timer);
    timer = auto.checked ? setInterval(() => void load(), AUTO_REFRESH_MS) : undefined;
  });

  replace(
    main,
    h('h1', {}, 'Runs'),
    filterForm(filters),
    h(
      'section',
      { 'aria-labelledby': 'counts-heading' },
      h('h2', { id: 'counts-heading' }, 'By state'),
      countsList,
    ),
    h(
      'div',
      { className: 'toolbar' },
      h('button', { type: 'button', onclick: () => void load(true) }, 'Refresh'),
      h('span', { className: 'check' }, auto, h('label', { for: autoId }, 'Refresh every 5 s')),
      status,
    ),
    problem,
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'runs' },
        h('caption', {}, 'Runs, newest first'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Run', 'State', 'Root node type', 'Tenant', 'Started', 'Duration'].map((title) =>
              h('th', { scope: 'col' }, title),
            ),
          ),
        ),
        body,
      ),
    ),
    h('nav', { className: 'pager', 'aria-label': 'Pages of Runs' }, previous, pageLabel, next),
  );
  void load();
  return () => {
    aborter.abort();
    clearInterval(timer);
  };
}

function filterForm(filters: RunFilters): HTMLElement {
  const text = (name: keyof RunFilters, label: string, value: string | undefined, type = 'text') => {
    const id = uid(name);
    return h(
      'div',
      { className: 'field' },
      h('label', { for: id }, label),
      h('input', { id, name, type, value: value ?? '', ...(type === 'datetime-local' ? { step: 1 } : {}) }),
    );
  };
  const form = h(
    'form',
    { className: 'filters', role: 'search', 'aria-label': 'Filter Runs' },
    h(
      'fieldset',
      { className: 'states' },
      h('legend', {}, 'State'),
      RUN_STATES.map((state) => {
        const id = uid(`state-${state}`);
        return h(
          'span',
          { className: 'check' },
          h('input', {
            type: 'checkbox',
            id,
            name: 'state',
            value: state,
            checked: filters.state.includes(state),
          }),
          h('label', { for: id }, state),
        );
      }),
    ),
    text('root_node_type_id', 'Root node type', filters.root_node_type_id),
    text('tenant_id', 'Tenant', filters.tenant_id),
    text(
      'started_after',
      'Started at or after (local time)',
      isoToLocalInput(filters.started_after),
      'datetime-local',
    ),
    text(
      'started_before',
      'Started before (local time)',
      isoToLocalInput(filters.started_before),
      'datetime-local',
    ),
    h(
      'div',
      { className: 'actions' },
      h('button', { type: 'submit', className: 'primary' }, 'Apply filters'),
      h('a', { href: '#/runs', className: 'button' }, 'Clear'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const value = (name: string) => String(data.get(name) ?? '').trim() || undefined;
    const next: RunFilters = {
      state: RUN_STATES.filter((state) => data.getAll('state').includes(state)),
      root_node_type_id: value('root_node_type_id'),
      tenant_id: value('tenant_id'),
      started_after: localInputToIso(value('started_after') ?? ''),
      started_before: localInputToIso(value('started_before') ?? ''),
    };
    location.hash = runsHash(next);
  });
  return form;
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;
