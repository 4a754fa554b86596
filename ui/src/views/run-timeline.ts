/** The event timeline: one row per RunEvent in seq order, appended as events arrive. */
import type { RunEvent } from '../../../src/gen/contract.js';
import { h } from '../dom.js';
import { formatClock, formatTime, summarise } from '../format.js';

/** Rows kept on the page; older ones are dropped from view (the API keeps them all). */
const MAX_ROWS = 2000;

export interface TimelineView {
  readonly element: HTMLElement;
  append(events: readonly RunEvent[]): void;
}

export function timelineView(onSelect: (nodeRunId: string) => void): TimelineView {
  const body = h('tbody');
  const count = h('p', { className: 'status-line' }, 'No events yet.');
  let total = 0;
  const element = h(
    'section',
    { className: 'timeline', 'aria-labelledby': 'timeline-heading' },
    h('h2', { id: 'timeline-heading' }, 'Event timeline'),
    count,
    h(
      'div',
      { className: 'table-wrap', tabindex: 0, role: 'region', 'aria-labelledby': 'timeline-heading' },
      h(
        'table',
        { className: 'events' },
        h('caption', { className: 'visually-hidden' }, 'Run events in sequence order, times in UTC'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Seq', 'Time (UTC)', 'Type', 'NodeRun', 'Data'].map((title) => h('th', { scope: 'col' }, title)),
          ),
        ),
        body,
      ),
    ),
  );
  return {
    element,
    append(events) {
      for (const event of events) {
        body.appendChild(
          h(
            'tr',
            { 'data-seq': event.seq },
            h('td', { 'data-label': 'Seq' }, String(event.seq)),
            h(
              'td',
              { 'data-label': 'Time' },
              h('time', { datetime: event.time, title: formatTime(event.time) }, formatClock(event.time)),
            ),
            h('td', { 'data-label': 'Type' }, h('code', {}, event.type)),
            h(
              'td',
              { 'data-label': 'NodeRun' },
              event.node_run_id
                ? h(
                    'button',
                    { type: 'button', className: 'link', onclick: () => onSelect(event.node_run_id!) },
                    event.node_run_id,
                  )
                : '—',
            ),
            h('td', { 'data-label': 'Data', className: 'data' }, summarise(event.data)),
          ),
        );
      }
      total += events.length;
      while (body.rows.length > MAX_ROWS) body.deleteRow(0);
      count.textContent =
        total > MAX_ROWS ? `${total} events; the latest ${MAX_ROWS} are shown.` : `${total} events.`;
    },
  };
}
