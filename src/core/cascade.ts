/**
 * How a `Cascade` changes NodeRuns, for stores that hold NodeRuns as records (the memory store).
 * A durable store applies the same transformation in its own language; the store contract suite
 * checks that both give the same NodeRuns.
 */
import { TERMINATION_CODES, type TerminationCode } from '../errors.js';
import { type Cascade, EXT, isTerminal, type NodeRun, type NodeRunRecord } from './model.js';

/** One immutable `rc.completion_error` per reason, shared by every NodeRun it ends. */
const ERRORS = Object.fromEntries(
  Object.entries(TERMINATION_CODES).map(([code, message]) => [code, Object.freeze({ code, message })]),
) as Record<TerminationCode, { readonly code: TerminationCode; readonly message: string }>;

/** The error recorded on a NodeRun the coordinator ended for `reason`. */
export const terminationError = (reason: TerminationCode) => ERRORS[reason];

/** A NodeRun ended on the coordinator's own authority (cancel, cascade, budget). */
export function endByCoordinator(
  record: NodeRunRecord,
  reason: TerminationCode,
  time: string,
): NodeRunRecord {
  const nodeRun: NodeRun = {
    ...record.nodeRun,
    state: 'canceled',
    ended_at: time,
    extensions: { ...record.nodeRun.extensions, [EXT.completionError]: ERRORS[reason] },
  };
  return { ...record, nodeRun, endedByCoordinator: true };
}

/**
 * The unfinished NodeRuns a cascade ends, depth first. A finished NodeRun's descendants are all
 * finished, so the walk never enters one.
 */
export function* cascadeTargets(
  cascade: Cascade,
  nodeRun: (id: string) => NodeRunRecord | undefined,
  children: (id: string) => readonly string[],
): Generator<NodeRunRecord> {
  const pending: string[] = cascade.inclusive ? [cascade.from] : [...children(cascade.from)];
  for (let id = pending.pop(); id !== undefined; id = pending.pop()) {
    const record = nodeRun(id);
    if (!record || isTerminal(record.nodeRun.state)) continue;
    yield record;
    for (const child of children(id)) pending.push(child);
  }
}
