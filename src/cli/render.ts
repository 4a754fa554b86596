/**
 * Terminal output: colours (only for a TTY without NO_COLOR), the Runs table, the NodeRun tree,
 * one line per RunEvent, and the fields of a Run or NodeRun. Pure functions of their input, so
 * that what a user sees is what the tests see.
 */
import type { NodeRun, Run, RunEvent } from '../gen/contract.js';

export interface Style {
  state(state: string): string;
  dim(text: string): string;
  bold(text: string): string;
  error(text: string): string;
}

const paint = (code: string) => (text: string) => `\x1b[${code}m${text}\x1b[0m`;

const STATE_COLOURS: Record<string, string> = {
  succeeded: '32',
  failed: '31',
  canceled: '33',
  running: '36',
  assigned: '34',
  queued: '2',
};

export const plain: Style = {
  state: (s) => s,
  dim: (s) => s,
  bold: (s) => s,
  error: (s) => s,
};

export const coloured: Style = {
  state: (s) => (STATE_COLOURS[s] ? paint(STATE_COLOURS[s])(s) : s),
  dim: paint('2'),
  bold: paint('1'),
  error: paint('31'),
};

/** Colour when the output is a terminal and NO_COLOR is unset or empty (https://no-color.org). */
export function styleFor(isTTY: boolean | undefined, env: Record<string, string | undefined>): Style {
  return isTTY && !env.NO_COLOR ? coloured : plain;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: matches the colour escapes this file writes
const ESCAPES = /\x1b\[[0-9;]*m/g;
const width = (text: string) => text.replace(ESCAPES, '').length;

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[], style: Style): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((row) => width(row[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - width(cell))))
      .join('  ')
      .trimEnd();
  return [style.bold(line(header)), ...rows.map(line)].join('\n');
}

/** `850ms`, `12.3s`, `4m05s`, `2h03m`; `-` when the thing has not ended. */
export function duration(startedAt: string | undefined, endedAt: string | undefined): string {
  if (!startedAt || !endedAt) return '-';
  const ms = Date.parse(endedAt) - Date.parse(startedAt);
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`;
}

export interface RunListItem {
  readonly run: Run;
  readonly root_node_type_id: string;
}

export function runsTable(items: readonly RunListItem[], style: Style): string {
  return table(
    ['RUN ID', 'STATE', 'ROOT TYPE', 'STARTED', 'DURATION'],
    items.map(({ run, root_node_type_id }) => [
      run.run_id,
      style.state(run.state),
      root_node_type_id,
      run.started_at ?? '-',
      duration(run.started_at, run.ended_at),
    ]),
    style,
  );
}

interface CompletionError {
  readonly code?: unknown;
  readonly message?: unknown;
}

/** `code: message` from `extensions['rc.completion_error']`, if there is one. */
export function completionError(object: { extensions?: Record<string, unknown> }): string | undefined {
  const error = object.extensions?.['rc.completion_error'] as CompletionError | undefined;
  if (!error || typeof error !== 'object') return undefined;
  const code = typeof error.code === 'string' ? error.code : 'error';
  return typeof error.message === 'string' && error.message ? `${code}: ${error.message}` : code;
}

const typeRef = (ref: { node_type_id: string; version: string }) => `${ref.node_type_id}@${ref.version}`;

function fields(rows: readonly (readonly [string, string | undefined])[], style: Style): string[] {
  const present = rows.filter((row): row is readonly [string, string] => row[1] !== undefined);
  const pad = Math.max(...present.map(([name]) => name.length));
  return present.map(([name, value]) => `  ${style.dim(name.padEnd(pad))}  ${value}`);
}

export function runDetails(run: Run, rootType: string | undefined, style: Style): string {
  const error = completionError(run);
  return [
    `Run ${style.bold(run.run_id)}  ${style.state(run.state)}`,
    ...fields(
      [
        ['root', run.root_node_run_id],
        ['root type', rootType],
        ['tenant', run.run_context?.tenant_id],
        ['started', run.started_at],
        ['ended', run.ended_at],
        ['duration', run.ended_at ? duration(run.started_at, run.ended_at) : undefined],
        ['error', error === undefined ? undefined : style.error(error)],
      ],
      style,
    ),
  ].join('\n');
}

export function nodeRunDetails(node: NodeRun, style: Style): string {
  const error = completionError(node);
  const json = (value: unknown) => (value === undefined ? undefined : JSON.stringify(value));
  return [
    `NodeRun ${style.bold(node.node_run_id)}  ${style.state(node.state)}`,
    ...fields(
      [
        ['run', node.run_id],
        ['parent', node.parent_node_run_id],
        ['type', typeRef(node.node_type_ref)],
        ['kind', node.kind],
        ['created', node.created_at],
        ['started', node.started_at],
        ['ended', node.ended_at],
        ['duration', node.ended_at ? duration(node.started_at ?? node.created_at, node.ended_at) : undefined],
        ['executor', node.executor_binding?.endpoint],
        ['inputs', json(node.inputs)],
        ['outputs', json(node.outputs)],
        ['evaluation', json(node.evaluation_result)],
        ['error', error === undefined ? undefined : style.error(error)],
      ],
      style,
    ),
  ].join('\n');
}

const byCreation = (a: NodeRun, b: NodeRun) =>
  (a.created_at ?? '').localeCompare(b.created_at ?? '') ||
  a.node_run_id.localeCompare(b.node_run_id, 'en', { numeric: true });

function nodeLine(node: NodeRun, style: Style): string {
  return [
    style.bold(node.node_run_id),
    node.kind ?? '-',
    style.state(node.state),
    typeRef(node.node_type_ref),
    duration(node.started_at ?? node.created_at, node.ended_at),
  ].join('  ');
}

/**
 * The NodeRuns as a tree drawn with box-drawing characters, children in creation order. A NodeRun
 * whose parent is not in the list (an assignment token sees only its subtree) is drawn as a root.
 */
export function nodeRunTree(nodes: readonly NodeRun[], style: Style): string {
  const ids = new Set(nodes.map((n) => n.node_run_id));
  const children = new Map<string | undefined, NodeRun[]>();
  for (const node of nodes) {
    const parent =
      node.parent_node_run_id && ids.has(node.parent_node_run_id) ? node.parent_node_run_id : undefined;
    children.set(parent, [...(children.get(parent) ?? []), node]);
  }
  const lines: string[] = [];
  const draw = (node: NodeRun, lead: string, branch: string, rest: string) => {
    lines.push(`${lead}${branch}${nodeLine(node, style)}`);
    const error = completionError(node);
    const kids = (children.get(node.node_run_id) ?? []).sort(byCreation);
    if (error) lines.push(`${lead}${rest}${kids.length ? '│   ' : '    '}${style.error(`error: ${error}`)}`);
    kids.forEach((kid, i) => {
      const last = i === kids.length - 1;
      draw(kid, lead + rest, last ? '└── ' : '├── ', last ? '    ' : '│   ');
    });
  };
  for (const root of (children.get(undefined) ?? []).sort(byCreation)) draw(root, '', '', '');
  return lines.join('\n');
}

/** What an event's data says, as `key=value` pairs (objects as JSON), cut to a terminal line. */
export function eventSummary(data: Record<string, unknown> | undefined, max = 100): string {
  if (!data) return '';
  const text = Object.entries(data)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * `seq  time  type  node_run_id  summary` (`-` for an event of the Run itself). The columns up to
 * the type are aligned; ids vary in length and a followed stream cannot know the widest in advance.
 */
export function eventLine(event: RunEvent, style: Style): string {
  const summary = eventSummary(event.data);
  return [
    String(event.seq).padStart(4),
    style.dim(event.time),
    event.type.padEnd(23),
    event.node_run_id ?? '-',
    summary,
  ]
    .join('  ')
    .trimEnd();
}
