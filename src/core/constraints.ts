/**
 * Constraint merging ("most restrictive wins") and the structural and candidate checks applied when
 * NodeRuns are created. Pure functions over ConstraintEnvelope values.
 */
import { ArpError } from '../errors.js';
import type { ConstraintEnvelope } from './model.js';

type Section<K extends keyof ConstraintEnvelope> = NonNullable<ConstraintEnvelope[K]>;
type Structural = Section<'structural'>;
type Budgets = Section<'budgets'>;
type Candidates = Section<'candidates'>;
type Gates = Section<'gates'>;

const SIDE_EFFECT_RANK = { read: 0, write: 1, irreversible: 2 } as const;
type SideEffectClass = keyof typeof SIDE_EFFECT_RANK;

function minOf(values: readonly (number | undefined)[]): number | undefined {
  let result: number | undefined;
  for (const value of values)
    if (value !== undefined && (result === undefined || value < result)) result = value;
  return result;
}

function pickMin<T extends object>(
  sections: readonly T[],
  keys: readonly (keyof T & string)[],
): T | undefined {
  const out: Record<string, number> = {};
  for (const key of keys) {
    const value = minOf(sections.map((section) => section[key] as number | undefined));
    if (value !== undefined) out[key] = value;
  }
  return Object.keys(out).length > 0 ? (out as T) : undefined;
}

function mergeCandidates(sections: readonly Candidates[]): Candidates | undefined {
  const out: Candidates = {};
  const max = minOf(sections.map((s) => s.max_candidates_per_subtask));
  if (max !== undefined) out.max_candidates_per_subtask = max;
  const allowLists = sections.flatMap((s) => (s.allowed_node_type_ids ? [s.allowed_node_type_ids] : []));
  if (allowLists.length > 0) {
    const [first, ...rest] = allowLists;
    out.allowed_node_type_ids = [...new Set(first)]
      .filter((id) => rest.every((list) => list.includes(id)))
      .sort();
  }
  const denied = new Set(sections.flatMap((s) => s.denied_node_type_ids ?? []));
  if (sections.some((s) => s.denied_node_type_ids)) out.denied_node_type_ids = [...denied].sort();
  return Object.keys(out).length > 0 ? out : undefined;
}

function mergeGates(sections: readonly Gates[]): Gates | undefined {
  const out: Gates = {};
  const approvals = sections.flatMap((s) => (s.require_approval === undefined ? [] : [s.require_approval]));
  if (approvals.length > 0) out.require_approval = approvals.some(Boolean);
  let worst: SideEffectClass | undefined;
  for (const { side_effect_class: value } of sections) {
    if (value !== undefined && (worst === undefined || SIDE_EFFECT_RANK[value] > SIDE_EFFECT_RANK[worst])) {
      worst = value;
    }
  }
  if (worst !== undefined) out.side_effect_class = worst;
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * Merges envelopes so that the most restrictive value wins: numeric limits take the minimum,
 * allow-lists intersect, deny-lists unite, `require_approval` is true if any is, and
 * `side_effect_class` takes the most restrictive class. Envelope `extensions` are not merged.
 * Returns undefined when nothing is constrained.
 */
export function mergeConstraints(
  ...envelopes: readonly (ConstraintEnvelope | undefined)[]
): ConstraintEnvelope | undefined {
  const present = envelopes.filter((e): e is ConstraintEnvelope => e !== undefined);
  if (present.length === 0) return undefined;
  const sections = <K extends keyof ConstraintEnvelope>(key: K) =>
    present.flatMap((e) => (e[key] ? [e[key] as Section<K>] : []));
  const out: ConstraintEnvelope = {};
  const structural = pickMin<Structural>(sections('structural'), [
    'max_depth',
    'max_children_per_composite',
    'max_total_nodes_per_run',
    'max_decomposition_rounds_per_node',
  ]);
  if (structural) out.structural = structural;
  const candidates = mergeCandidates(sections('candidates'));
  if (candidates) out.candidates = candidates;
  const budgets = pickMin<Budgets>(sections('budgets'), [
    'max_wall_time_ms',
    'max_steps',
    'max_external_calls',
    'max_cost',
  ]);
  if (budgets) out.budgets = budgets;
  const gates = mergeGates(sections('gates'));
  if (gates) out.gates = gates;
  return Object.keys(out).length > 0 ? out : undefined;
}

export type StructuralLimit = keyof Structural;

/** 409 `constraint_violation` naming the limit, its value and what the request attempted. */
export function constraintViolation(constraint: string, limit: unknown, attempted: unknown, message: string) {
  return new ArpError('constraint_violation', message, { details: { constraint, limit, attempted } });
}

export interface StructuralAttempt {
  /** Depth the new children would have (parent depth + 1). */
  readonly childDepth: number;
  /** Existing children of the parent, any state, plus the new ones. */
  readonly childrenAfter: number;
  /** All NodeRuns of the Run, root included, plus the new ones. */
  readonly totalAfter: number;
  /** Decomposition rounds of the parent including this one. */
  readonly roundsAfter: number;
}

/** Throws `constraint_violation` for the first structural limit the attempt would exceed. */
export function checkStructural(limits: Structural | undefined, attempt: StructuralAttempt): void {
  if (!limits) return;
  const checks: [StructuralLimit, number, string][] = [
    ['max_depth', attempt.childDepth, 'NodeRuns at this depth exceed max_depth'],
    [
      'max_children_per_composite',
      attempt.childrenAfter,
      'The parent would exceed max_children_per_composite',
    ],
    ['max_total_nodes_per_run', attempt.totalAfter, 'The Run would exceed max_total_nodes_per_run'],
    [
      'max_decomposition_rounds_per_node',
      attempt.roundsAfter,
      'The parent would exceed max_decomposition_rounds_per_node',
    ],
  ];
  for (const [name, attempted, message] of checks) {
    const limit = limits[name];
    if (limit !== undefined && attempted > limit) {
      throw constraintViolation(`structural.${name}`, limit, attempted, message);
    }
  }
}

/** Throws `constraint_violation` when a candidate allow- or deny-list excludes this node type. */
export function checkCandidate(candidates: Candidates | undefined, nodeTypeId: string, index: number): void {
  if (!candidates) return;
  const { allowed_node_type_ids: allowed, denied_node_type_ids: denied } = candidates;
  if (denied?.includes(nodeTypeId)) {
    throw new ArpError(
      'constraint_violation',
      `NodeType '${nodeTypeId}' is denied by the candidate constraints`,
      {
        details: {
          constraint: 'candidates.denied_node_type_ids',
          limit: denied,
          attempted: nodeTypeId,
          index,
        },
      },
    );
  }
  if (allowed && !allowed.includes(nodeTypeId)) {
    throw new ArpError(
      'constraint_violation',
      `NodeType '${nodeTypeId}' is not in the allowed candidate set`,
      {
        details: {
          constraint: 'candidates.allowed_node_type_ids',
          limit: allowed,
          attempted: nodeTypeId,
          index,
        },
      },
    );
  }
}
