/**
 * Listing Runs on PostgreSQL reads an index in listing order, whatever the filters: with 20,000
 * Runs in the table (and statistics), the plan of every statement the store sends has no sequential
 * scan of `runs` and reads one of the listing indexes. The statements are the store's own, captured
 * on their way to the pool, then explained with their values on the real server.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Database, openDatabase } from '../../src/store/postgres/database.js';
import { PostgresListing } from '../../src/store/postgres/listing.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import type { Statement } from '../../src/store/postgres/sql.js';
import type { RunFilter, RunPosition } from '../../src/store/store.js';

let database: Database;
const schema = `listing_plan_${process.pid}`;
const RUNS = 20_000;

beforeAll(async () => {
  database = openDatabase({ url: inject('databaseUrl'), poolSize: 2, statementTimeoutMs: 60_000 });
  await migrate(database.pool, schema);
  // Runs a second apart, a tenth finished, over 50 tenants and 20 root types.
  await database.pool.query(
    `INSERT INTO "${schema}".runs (run_id, state, doc, start_fingerprint, steps, node_run_count, live_count,
                                  last_seq, started_at, ended_at, tenant_id, root_node_type_id)
     SELECT 'run_' || i, CASE WHEN i % 10 = 0 THEN 'succeeded' ELSE 'running' END, '{}', '', 0, 1, 1, 2,
            timestamptz '2026-01-01' + i * interval '1 second', NULL, 'tenant_' || (i % 50),
            'composite.type_' || (i % 20)
       FROM generate_series(1, ${RUNS}) AS i`,
  );
  await database.pool.query(`ANALYZE "${schema}".runs`);
});

afterAll(async () => {
  await database?.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await database?.close();
});

/** The statements the store sends for one call, with their values. */
async function captured(call: (listing: PostgresListing) => Promise<unknown>) {
  const sent: { text: string; values: unknown[] }[] = [];
  const pool = {
    query: async (statement: Statement, values: unknown[]) => {
      sent.push({ text: statement.text, values });
      return { rows: [] };
    },
  };
  await call(new PostgresListing(pool as never, schema, 'plan'));
  return sent;
}

/** Every node of a JSON plan. */
function nodes(plan: Record<string, unknown>): Record<string, unknown>[] {
  const children = (plan.Plans as Record<string, unknown>[] | undefined) ?? [];
  return [plan, ...children.flatMap(nodes)];
}

async function plan(call: (listing: PostgresListing) => Promise<unknown>) {
  const [sent] = await captured(call);
  const { rows } = await database.pool.query(`EXPLAIN (FORMAT JSON) ${sent!.text}`, sent!.values);
  return nodes((rows[0]['QUERY PLAN'] as { Plan: Record<string, unknown> }[])[0]!.Plan);
}

const minute = (n: number) => Date.parse('2026-01-01T00:00:00Z') + n * 60_000;
const after: RunPosition = { startedAt: minute(200), runId: 'run_12000' };

describe('listing Runs on PostgreSQL', () => {
  const shapes: [string, RunFilter, RunPosition | undefined][] = [
    ['no filter', {}, undefined],
    ['a page after a cursor', {}, after],
    ['one state', { states: ['running'] }, undefined],
    ['one state after a cursor', { states: ['succeeded'] }, after],
    ['root node type', { rootNodeTypeId: 'composite.type_3' }, after],
    ['tenant', { tenantId: 'tenant_7' }, after],
    ['a time window', { startedFrom: minute(10), startedBefore: minute(20) }, undefined],
    ['everything', { states: ['running'], tenantId: 'tenant_7', startedFrom: minute(10) }, after],
  ];
  for (const [name, filter, position] of shapes) {
    it(`reads a listing index, never the whole table: ${name}`, async () => {
      const planned = await plan((listing) => listing.listRuns(filter, position, 50));
      const scans = planned.filter((node) => node['Relation Name'] === 'runs');
      expect(scans.map((node) => node['Node Type'])).not.toContain('Seq Scan');
      expect(scans.some((node) => String(node['Index Name']).startsWith('runs_listing'))).toBe(true);
    });
  }

  it('counts a filtered set through an index', async () => {
    const planned = await plan((listing) => listing.countRuns({ tenantId: 'tenant_7' }));
    const scans = planned.filter((node) => node['Relation Name'] === 'runs');
    expect(scans.map((node) => node['Node Type'])).not.toContain('Seq Scan');
  });
});
