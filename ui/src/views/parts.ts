/** Pieces shared by the pages: state badges, JSON blocks, error notices. */
import type { NodeRunState, RunState } from '../../../src/gen/contract.js';
import { h } from '../dom.js';
import { prettyJson } from '../format.js';

/** A mark per state, so that states differ by shape and text as well as colour. */
const MARKS: Record<NodeRunState | RunState, string> = {
  queued: '○',
  assigned: '◔',
  running: '◑',
  succeeded: '✓',
  failed: '✕',
  canceled: '⊘',
};

/** The state as text with a mark; the colour only repeats what the text says. */
export function stateBadge(state: NodeRunState | RunState): HTMLElement {
  return h(
    'span',
    { className: `badge state-${state}`, 'data-state': state },
    h('span', { 'aria-hidden': 'true' }, MARKS[state] ?? '•'),
    ` ${state}`,
  );
}

/** A labelled block of JSON, collapsed into a <details> when long. */
export function jsonBlock(title: string, value: unknown, open = true): HTMLElement {
  const text = prettyJson(value);
  const pre = h('pre', { className: 'json', tabindex: 0 }, h('code', {}, text));
  const long = text.split('\n').length > 24;
  return h(
    'details',
    { className: 'json-block', open: open && !long },
    h('summary', {}, title, long ? ` (${text.split('\n').length} lines)` : ''),
    pre,
  );
}

export function notice(message: string, kind: 'error' | 'info' = 'error'): HTMLElement {
  return h('p', { className: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
}
