/**
 * The schema, as numbered migrations applied in order (see migrate.ts). Every table of Run data
 * carries `run_id` and every decision touches the rows of one Run, so the schema can be distributed
 * by `run_id` (`instances`, one row per process, is not Run data).
 * Times the coordinator reasons about (deadlines, leases, retries) are epoch milliseconds from the
 * coordinator's clock, not the database's, so that every instance and every test agrees on them.
 * `{schema}` is replaced by the quoted schema name.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs, node runs, events and the effect outbox',
    sql: `
CREATE TABLE {schema}.runs (
  run_id            text PRIMARY KEY,
  state             text NOT NULL,
  -- The Run exactly as served (json keeps the text as written; jsonb would rewrite it).
  doc               json NOT NULL,
  constraints       jsonb,
  start_fingerprint text NOT NULL,
  deadline_at       bigint,
  steps             integer NOT NULL,
  node_run_count    integer NOT NULL,
  live_count        integer NOT NULL,
  last_seq          bigint NOT NULL,
  started_at        timestamptz NOT NULL,
  ended_at          timestamptz,
  tenant_id         text,
  root_node_type_id text NOT NULL
)
-- Every decision updates its Run's row (seq, counters): free room on each page lets an update stay on
-- its page (a HOT update, no index entries), instead of bloating every index of a busy Run.
WITH (fillfactor = 50);
CREATE INDEX runs_live ON {schema}.runs (run_id) WHERE state = 'running';
CREATE INDEX runs_deadline ON {schema}.runs (deadline_at) WHERE state = 'running' AND deadline_at IS NOT NULL;
CREATE INDEX runs_finished ON {schema}.runs (ended_at) WHERE state <> 'running';

CREATE TABLE {schema}.node_runs (
  run_id                  text NOT NULL,
  node_run_id             text NOT NULL,
  parent_node_run_id      text,
  state                   text NOT NULL,
  kind                    text,
  -- The NodeRun exactly as served (json keeps the text as written; jsonb would rewrite it).
  doc                     json NOT NULL,
  depth                   integer NOT NULL,
  constraints             jsonb,
  child_count             integer NOT NULL,
  rounds                  integer NOT NULL,
  idempotency_key         text,
  idempotency_fingerprint text,
  completion_fingerprint  text,
  ended_by_coordinator    boolean NOT NULL,
  assignment_token_hash   text,
  deadline_at             bigint,
  -- The process dispatching it (queued) or waiting for its execution (running atomic), for as long
  -- as that process's lease in instances lasts.
  owner                   text,
  PRIMARY KEY (run_id, node_run_id)
)
-- A composite's row is updated for every child it gains, every NodeRun's as it runs and ends.
WITH (fillfactor = 70);
CREATE UNIQUE INDEX node_runs_id ON {schema}.node_runs (node_run_id) INCLUDE (run_id);
CREATE INDEX node_runs_live_children ON {schema}.node_runs (run_id, parent_node_run_id)
  WHERE state IN ('queued', 'running');
CREATE UNIQUE INDEX node_runs_idempotency ON {schema}.node_runs (run_id, parent_node_run_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX node_runs_assignment ON {schema}.node_runs (assignment_token_hash)
  WHERE assignment_token_hash IS NOT NULL;
CREATE INDEX node_runs_queued ON {schema}.node_runs (owner) WHERE state = 'queued';
CREATE INDEX node_runs_executing ON {schema}.node_runs (owner) WHERE state = 'running' AND kind = 'atomic';
CREATE INDEX node_runs_deadline ON {schema}.node_runs (deadline_at)
  WHERE state = 'running' AND deadline_at IS NOT NULL;

CREATE TABLE {schema}.run_events (
  run_id      text NOT NULL,
  seq         bigint NOT NULL,
  node_run_id text,
  -- The event exactly as served, one NDJSON line without its newline.
  line        text NOT NULL,
  PRIMARY KEY (run_id, seq)
);

-- The processes sharing the schema, each holding what it dispatches and executes for as long as it
-- renews its lease here. Not per Run: one row per process (a reference table when distributed).
CREATE TABLE {schema}.instances (
  instance_id      text PRIMARY KEY,
  lease_expires_at bigint NOT NULL,
  started_at       timestamptz NOT NULL DEFAULT now()
);

-- Effects committed with the decision that caused them and carried out afterwards; a row stays
-- until the effect is done, so an effect a crash interrupted is carried out by another instance.
CREATE TABLE {schema}.outbox (
  run_id          text NOT NULL,
  effect_id       text NOT NULL,
  kind            text NOT NULL,
  node_run_id     text NOT NULL,
  executor_kind   text,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at bigint NOT NULL,
  PRIMARY KEY (run_id, effect_id)
);
CREATE INDEX outbox_due ON {schema}.outbox (next_attempt_at);
`,
  },
  {
    version: 2,
    name: 'indexes for listing Runs',
    sql: `
-- Runs newest first, alone or by state, root node type or tenant: each filter has an index that is
-- already in listing order, so a page reads its rows and stops. Ids sort by code point ("C"), the
-- order every store uses. These columns never change but for state (once, when the Run ends).
CREATE INDEX runs_listing ON {schema}.runs (started_at, run_id COLLATE "C");
CREATE INDEX runs_listing_state ON {schema}.runs (state, started_at, run_id COLLATE "C");
CREATE INDEX runs_listing_type ON {schema}.runs (root_node_type_id, started_at, run_id COLLATE "C");
CREATE INDEX runs_listing_tenant ON {schema}.runs (tenant_id, started_at, run_id COLLATE "C")
  WHERE tenant_id IS NOT NULL;
`,
  },
];
