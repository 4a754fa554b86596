/**
 * Finding Runs in PostgreSQL: the listing and the counts, whose filters decide the statement (one
 * statement per combination of filters, each prepared once per connection, so that every plan can
 * use the index that serves its filters; see migration 2), and the NodeRuns of a Run.
 *
 * Run and NodeRun ids are ordered `COLLATE "C"` (by code point), the order of every store.
 */
import type pg from 'pg';
import { RUN_STATES, type RunState } from '../../core/model.js';
import type { ListedRun, RunFilter, RunPosition } from '../store.js';
import { quoteIdent, type Statement } from './sql.js';

const C = 'COLLATE "C"';

export class PostgresListing {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #prefix: string;
  readonly #statements = new Map<string, Statement>();

  constructor(pool: pg.Pool, schema: string, statementPrefix: string) {
    this.#pool = pool;
    this.#s = quoteIdent(schema);
    this.#prefix = statementPrefix;
  }

  async listRuns(filter: RunFilter, after: RunPosition | undefined, limit: number): Promise<ListedRun[]> {
    const { where, values, key } = conditions(filter, after);
    values.push(limit);
    const statement = this.#statement(
      `list_${key}`,
      () =>
        `SELECT doc::text AS json, root_node_type_id, run_id,
              round(extract(epoch FROM started_at) * 1000)::bigint AS started_ms
         FROM ${this.#s}.runs ${where}
        ORDER BY started_at DESC, run_id ${C} DESC LIMIT $${values.length}`,
    );
    const { rows } = await this.#pool.query<{
      json: string;
      root_node_type_id: string;
      run_id: string;
      started_ms: string;
    }>(statement, values);
    return rows.map((row) => ({
      json: row.json,
      rootNodeTypeId: row.root_node_type_id,
      position: { startedAt: Number(row.started_ms), runId: row.run_id },
    }));
  }

  async countRuns(filter: RunFilter): Promise<Record<RunState, number>> {
    const { where, values, key } = conditions({ ...filter, states: undefined }, undefined);
    const statement = this.#statement(
      `count_${key}`,
      () => `SELECT state, count(*)::integer AS count FROM ${this.#s}.runs ${where} GROUP BY state`,
    );
    const { rows } = await this.#pool.query<{ state: RunState; count: number }>(statement, values);
    const counts = Object.fromEntries(RUN_STATES.map((state) => [state, 0])) as Record<RunState, number>;
    for (const row of rows) counts[row.state] = row.count;
    return counts;
  }

  async listNodeRuns(
    runId: string,
    options: { readonly after?: string; readonly limit: number; readonly under?: string },
  ): Promise<string[] | undefined> {
    const s = this.#s;
    // The Run's row decides whether it exists; its NodeRuns (or the subtree's) are joined to it.
    const statement =
      options.under === undefined
        ? this.#statement(
            'node_runs',
            () =>
              `SELECT r.run_id, n.json FROM ${s}.runs r
               LEFT JOIN LATERAL (
                 SELECT node_run_id, doc::text AS json FROM ${s}.node_runs
                  WHERE run_id = r.run_id AND node_run_id ${C} > $2
                  ORDER BY node_run_id ${C} LIMIT $3
               ) n ON true
              WHERE r.run_id = $1 ORDER BY n.node_run_id ${C}`,
          )
        : this.#statement(
            'node_runs_under',
            () =>
              `WITH RECURSIVE subtree(node_run_id) AS (
               SELECT node_run_id FROM ${s}.node_runs WHERE run_id = $1 AND node_run_id = $4
               UNION ALL
               SELECT n.node_run_id FROM ${s}.node_runs n JOIN subtree t ON n.parent_node_run_id = t.node_run_id
                WHERE n.run_id = $1
             )
             SELECT r.run_id, n.json FROM ${s}.runs r
               LEFT JOIN LATERAL (
                 SELECT n.node_run_id, n.doc::text AS json FROM ${s}.node_runs n
                   JOIN subtree t ON t.node_run_id = n.node_run_id
                  WHERE n.run_id = r.run_id AND n.node_run_id ${C} > $2
                  ORDER BY n.node_run_id ${C} LIMIT $3
               ) n ON true
              WHERE r.run_id = $1 ORDER BY n.node_run_id ${C}`,
          );
    const values: unknown[] = [runId, options.after ?? '', options.limit];
    if (options.under !== undefined) values.push(options.under);
    const { rows } = await this.#pool.query<{ run_id: string; json: string | null }>(statement, values);
    if (rows.length === 0) return undefined;
    return rows.flatMap((row) => (row.json === null ? [] : [row.json]));
  }

  #statement(key: string, text: () => string): Statement {
    let statement = this.#statements.get(key);
    if (!statement) {
      statement = { name: `${this.#prefix}_${key}`, text: text() };
      this.#statements.set(key, statement);
    }
    return statement;
  }
}

/** The WHERE clause of a filter (and a cursor), its values, and a key naming its shape. */
function conditions(filter: RunFilter, after: RunPosition | undefined) {
  const clauses: string[] = [];
  const values: unknown[] = [];
  let key = '';
  const add = (flag: string, clause: (...parameters: string[]) => string, ...given: unknown[]) => {
    const parameters = given.map((value) => {
      values.push(value);
      return `$${values.length}`;
    });
    clauses.push(clause(...parameters));
    key += flag;
  };
  if (filter.states) add('s', (p) => `state = ANY(${p}::text[])`, filter.states);
  if (filter.rootNodeTypeId !== undefined) add('r', (p) => `root_node_type_id = ${p}`, filter.rootNodeTypeId);
  if (filter.tenantId !== undefined) add('t', (p) => `tenant_id = ${p}`, filter.tenantId);
  if (filter.startedFrom !== undefined)
    add('f', (p) => `started_at >= ${p}::timestamptz`, new Date(filter.startedFrom).toISOString());
  if (filter.startedBefore !== undefined)
    add('b', (p) => `started_at < ${p}::timestamptz`, new Date(filter.startedBefore).toISOString());
  if (after) {
    add(
      'a',
      (time, id) => `(started_at, run_id ${C}) < (${time}::timestamptz, ${id} ${C})`,
      new Date(after.startedAt).toISOString(),
      after.runId,
    );
  }
  return { where: clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', values, key: key || 'all' };
}
