/**
 * The details of one NodeRun: identity, times, executor binding, evaluation, inputs and outputs,
 * and the coordinator's own `rc.*` bookkeeping (its completion error first, when there is one).
 */
import type { NodeRun } from '../../../src/gen/contract.js';
import { h } from '../dom.js';
import { elapsed, formatTime } from '../format.js';
import { jsonBlock, stateBadge } from './parts.js';

export function nodeRunDetail(nodeRun: NodeRun, onSelect: (id: string) => void): HTMLElement[] {
  const extensions = nodeRun.extensions ?? {};
  // The completion error first: it says why the NodeRun ended the way it did.
  const rc = Object.entries(extensions)
    .filter(([key]) => key.startsWith('rc.'))
    .sort(([a], [b]) =>
      a === 'rc.completion_error' ? -1 : b === 'rc.completion_error' ? 1 : a.localeCompare(b),
    );
  const other = Object.entries(extensions).filter(([key]) => !key.startsWith('rc.'));
  const completionError = extensions['rc.completion_error'] as
    | { code?: string; message?: string }
    | undefined;
  const ref = nodeRun.node_type_ref;
  const row = (term: string, ...value: (Node | string)[]) => [h('dt', {}, term), h('dd', {}, ...value)];
  return [
    h('h3', { className: 'detail-title' }, ref.node_type_id, ' ', h('code', {}, nodeRun.node_run_id)),
    completionError
      ? h(
          'p',
          { className: 'notice notice-error' },
          h('strong', {}, completionError.code ?? 'error'),
          `: ${completionError.message ?? ''}`,
        )
      : null,
    h(
      'dl',
      { className: 'facts' },
      row('State', stateBadge(nodeRun.state)),
      row('Kind', nodeRun.kind ?? 'not known yet'),
      row('Type', `${ref.node_type_id} @ ${ref.version}`),
      row(
        'Parent',
        nodeRun.parent_node_run_id
          ? h(
              'button',
              { type: 'button', className: 'link', onclick: () => onSelect(nodeRun.parent_node_run_id!) },
              nodeRun.parent_node_run_id,
            )
          : 'none (the root)',
      ),
      row('Created', formatTime(nodeRun.created_at)),
      row('Started', formatTime(nodeRun.started_at)),
      row('Ended', formatTime(nodeRun.ended_at)),
      row('Duration', elapsed(nodeRun.started_at, nodeRun.ended_at, Date.now())?.text ?? '—'),
      row(
        'Executor',
        nodeRun.executor_binding
          ? `${nodeRun.executor_binding.executor_instance_id} at ${nodeRun.executor_binding.endpoint}`
          : 'not bound',
      ),
      row(
        'Evaluation',
        nodeRun.evaluation_result
          ? `${nodeRun.evaluation_result.status}${nodeRun.evaluation_result.reason_code ? ` (${nodeRun.evaluation_result.reason_code})` : ''}`
          : 'none',
      ),
    ),
    nodeRun.executor_binding ? jsonBlock('Executor binding', nodeRun.executor_binding, false) : null,
    nodeRun.evaluation_result ? jsonBlock('Evaluation result', nodeRun.evaluation_result) : null,
    nodeRun.recovery_actions?.length ? jsonBlock('Recovery actions', nodeRun.recovery_actions) : null,
    jsonBlock('Outputs', nodeRun.outputs ?? null),
    nodeRun.output_artifacts?.length ? jsonBlock('Output artifacts', nodeRun.output_artifacts) : null,
    jsonBlock('Inputs', nodeRun.inputs ?? null, false),
    h(
      'section',
      { className: 'rc-keys', 'aria-labelledby': 'rc-keys-heading' },
      h('h4', { id: 'rc-keys-heading' }, 'Coordinator bookkeeping (rc.*)'),
      rc.length === 0
        ? h('p', {}, 'None.')
        : rc.map(([key, value]) => jsonBlock(key, value, key !== 'rc.constraints')),
    ),
    other.length > 0 ? jsonBlock('Other extensions', Object.fromEntries(other), false) : null,
  ].filter((element): element is HTMLElement => element !== null);
}
