/**
 * The service's Prometheus instruments, one registry per app (never prom-client's global one, so
 * that several apps in one process keep apart). Most are fed by observers the core already calls
 * (committed decisions, outgoing calls, token requests, store commits, dispatch claims); the gauges
 * are read from their sources when scraped. Nothing here runs unless metrics are on.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TokenCallRecord } from '../auth/outbound.js';
import type { CallRecord } from '../clients/http.js';
import type { CommitObserver } from '../coordinator/coordinator.js';
import { EXT, isTerminal, type NodeRunRecord } from '../core/model.js';
import { FastHistogram, type HistogramChild } from './histogram.js';

/** Seconds: from a fast in-memory answer (~100 µs) to a slow request (10 s). */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds: outgoing calls, which include executions (up to the execute timeout). */
const CALL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Seconds: a commit, in memory (µs) or a PostgreSQL transaction (ms). */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Label of requests outside the contract's operations (/metrics, /docs, /openapi.json, misses). */
export const OTHER_OPERATION = 'other';

/** What the gauges read when scraped; each source is optional. */
export interface ScrapeSources {
  /** Dispatches waiting for a slot. */
  readonly dispatchQueue?: () => number;
  /** Open follow event streams. */
  readonly openStreams?: () => number;
  /** The PostgreSQL pool, when the store has one. */
  readonly pool?: { readonly totalCount: number; readonly idleCount: number; readonly waitingCount: number };
}

export class Metrics {
  readonly registry = new Registry();
  readonly #httpDuration: FastHistogram;
  /** operation → children by status class (1xx..5xx at index 1..5): no string built per request. */
  readonly #httpChildren = new Map<string, (HistogramChild | undefined)[]>();
  readonly #runsStarted: Counter;
  readonly #runsFinished: Counter<'state'>;
  readonly #nodeRunTransitions: Counter<'kind' | 'state'>;
  /**
   * NodeRun transitions not yet added to their counter, by kind and state: a commit adds one to a
   * plain number, and a scrape moves the numbers into the counter (prom-client hashes the labels
   * of every `inc`).
   */
  readonly #pendingTransitions = new Map<string, Map<string, { count: number }>>();
  readonly #policyDecisions: Counter<'action' | 'decision'>;
  readonly #budgetExceeded: Counter<'budget'>;
  readonly #deadlineExpired: Counter<'kind'>;
  /** One child: the histogram has no labels. */
  readonly #dispatchLatency: HistogramChild;
  readonly #callDuration: FastHistogram;
  readonly #tokenDuration: Histogram<'outcome'>;
  readonly #commitDuration: FastHistogram;
  readonly #commitConflicts: Counter<'code'>;
  #sources: ScrapeSources = {};

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#httpDuration = new FastHistogram({
      name: 'arp_rc_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by contract operation and status class.',
      labelNames: ['operation', 'status_class'],
      buckets: REQUEST_BUCKETS,
      registry: this.registry,
    });
    this.#runsStarted = new Counter({
      name: 'arp_rc_runs_started_total',
      help: 'Runs started (an identical retry of a start is not counted).',
      registers,
    });
    this.#runsFinished = new Counter({
      name: 'arp_rc_runs_finished_total',
      help: 'Runs that reached a terminal state, by that state.',
      labelNames: ['state'],
      registers,
    });
    this.#nodeRunTransitions = new Counter({
      name: 'arp_rc_node_run_transitions_total',
      help: 'NodeRuns created in (queued) or moved to a state, by kind and new state; NodeRuns ended by a cascade are not counted.',
      labelNames: ['kind', 'state'],
      registers,
      collect: () => {
        for (const [kind, states] of this.#pendingTransitions) {
          for (const [state, pending] of states) {
            if (pending.count === 0) continue;
            this.#nodeRunTransitions.inc({ kind, state }, pending.count);
            pending.count = 0;
          }
        }
      },
    });
    this.#policyDecisions = new Counter({
      name: 'arp_rc_policy_decisions_total',
      help: 'Policy decisions recorded, by checkpoint action and decision.',
      labelNames: ['action', 'decision'],
      registers,
    });
    this.#budgetExceeded = new Counter({
      name: 'arp_rc_budget_exceeded_total',
      help: 'Runs (max_wall_time_ms) and NodeRuns (max_steps) ended because a budget ran out, by budget.',
      labelNames: ['budget'],
      registers,
    });
    this.#deadlineExpired = new Counter({
      name: 'arp_rc_deadline_expired_total',
      help: 'NodeRuns ended because their executor missed the deadline, by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.#dispatchLatency = new FastHistogram({
      name: 'arp_rc_dispatch_latency_seconds',
      help: 'Time from a NodeRun being handed to the dispatcher (queued) to its claim (running).',
      buckets: CALL_BUCKETS,
      labelNames: [],
      registry: this.registry,
    }).labels();
    this.#callDuration = new FastHistogram({
      name: 'arp_rc_outgoing_call_duration_seconds',
      help: 'Duration of each attempt of an outgoing call, by service, operation and outcome.',
      labelNames: ['service', 'operation', 'outcome'],
      buckets: CALL_BUCKETS,
      registry: this.registry,
    });
    this.#tokenDuration = new Histogram({
      name: 'arp_rc_token_request_duration_seconds',
      help: 'Duration of requests to the client-credentials token endpoint, by outcome.',
      labelNames: ['outcome'],
      buckets: CALL_BUCKETS,
      registers,
    });
    // Observed on every commit: the hot path's histogram.
    this.#commitDuration = new FastHistogram({
      name: 'arp_rc_store_commit_duration_seconds',
      help: 'Duration of a store commit (memory: one decision; postgres: one transaction, possibly a batch of decisions).',
      labelNames: ['store'],
      buckets: COMMIT_BUCKETS,
      registry: this.registry,
    });
    this.#commitConflicts = new Counter({
      name: 'arp_rc_store_commit_conflicts_total',
      help: 'PostgreSQL transactions refused with a retryable SQLSTATE (each is taken again), by code.',
      labelNames: ['code'],
      registers,
    });
    const sources = () => this.#sources;
    new Gauge({
      name: 'arp_rc_dispatch_queue_depth',
      help: 'NodeRuns waiting for a dispatch slot.',
      registers,
      collect() {
        this.set(sources().dispatchQueue?.() ?? 0);
      },
    });
    new Gauge({
      name: 'arp_rc_event_streams_open',
      help: 'Open follow (live) event streams.',
      registers,
      collect() {
        this.set(sources().openStreams?.() ?? 0);
      },
    });
    const pool = (name: string, help: string, read: (p: NonNullable<ScrapeSources['pool']>) => number) =>
      new Gauge({
        name,
        help,
        registers: [],
        collect() {
          const p = sources().pool;
          if (p) this.set(read(p));
        },
      });
    this.#poolGauges = [
      pool(
        'arp_rc_db_pool_connections',
        'PostgreSQL pool connections open (busy and idle).',
        (p) => p.totalCount,
      ),
      pool(
        'arp_rc_db_pool_idle_connections',
        'PostgreSQL pool connections open and idle.',
        (p) => p.idleCount,
      ),
      pool(
        'arp_rc_db_pool_waiting_queries',
        'Queries waiting for a PostgreSQL pool connection.',
        (p) => p.waitingCount,
      ),
    ];
  }

  readonly #poolGauges: Gauge[];

  /** Where the scrape-time gauges read from; the pool gauges exist only with a pool. */
  attach(sources: ScrapeSources): void {
    this.#sources = sources;
    if (sources.pool) for (const gauge of this.#poolGauges) this.registry.registerMetric(gauge);
  }

  /** One answered HTTP request (the hot path: one cached child per label pair). */
  request(operation: string, status: number, seconds: number): void {
    const statusClass = Math.min(5, Math.max(1, Math.floor(status / 100)));
    let children = this.#httpChildren.get(operation);
    if (!children) {
      children = [];
      this.#httpChildren.set(operation, children);
    }
    let child = children[statusClass];
    if (!child) {
      child = this.#httpDuration.labels(operation, `${statusClass}xx`);
      children[statusClass] = child;
    }
    child.observe(seconds);
  }

  /** A committed decision: Runs, NodeRun transitions, policy decisions, budgets and deadlines. */
  readonly committed: CommitObserver = (decision, before) => {
    for (const event of decision.committed) {
      switch (event.type) {
        case 'run_started':
          this.#runsStarted.inc();
          break;
        case 'run_completed': {
          const data = event.data ?? {};
          this.#runsFinished.inc({ state: String(data.state) });
          if (data.reason === 'budget_exceeded') this.#budgetExceeded.inc({ budget: String(data.budget) });
          break;
        }
        case 'policy_decided': {
          const data = event.data ?? {};
          this.#policyDecisions.inc({ action: String(data.action), decision: String(data.decision) });
          break;
        }
      }
    }
    const changes = decision.changes;
    if (!changes) return;
    for (const record of changes.created ?? []) this.#transition(record);
    for (const record of changes.updated ?? []) {
      const state = record.nodeRun.state;
      const prior = before.get(record.nodeRun.node_run_id);
      if (prior === state) continue;
      this.#transition(record);
      if (isTerminal(state)) this.#ended(record);
    }
  };

  #transition(record: NodeRunRecord): void {
    const kind = record.nodeRun.kind ?? 'unknown';
    const state = record.nodeRun.state;
    let states = this.#pendingTransitions.get(kind);
    if (!states) {
      states = new Map();
      this.#pendingTransitions.set(kind, states);
    }
    const pending = states.get(state);
    if (pending) pending.count += 1;
    else states.set(state, { count: 1 });
  }

  /** Budgets and deadlines, from the completion error the coordinator recorded on a NodeRun. */
  #ended(record: NodeRunRecord): void {
    const error = record.nodeRun.extensions?.[EXT.completionError] as
      | { code?: unknown; details?: { budget?: unknown } }
      | undefined;
    const code = error?.code;
    if (code === 'budget_exceeded') this.#budgetExceeded.inc({ budget: String(error?.details?.budget) });
    else if (code === 'node_run_timeout' || code === 'atomic_executor_timeout')
      this.#deadlineExpired.inc({ kind: record.nodeRun.kind ?? 'unknown' });
  }

  /** One attempt of an outgoing call. */
  readonly serviceCall = (record: CallRecord): void => {
    this.#callDuration
      .labels(record.service, record.operation, record.outcome)
      .observe(record.durationMs / 1000);
  };

  /** One request to the token endpoint. */
  readonly tokenCall = (record: TokenCallRecord): void => {
    this.#tokenDuration.observe({ outcome: record.outcome }, record.durationMs / 1000);
  };

  /** One dispatch claimed, after waiting this long. */
  readonly claimed = (waitedMs: number): void => {
    this.#dispatchLatency.observe(waitedMs / 1000);
  };

  /** Store commit observers for the memory store and the PostgreSQL committer. */
  storeCommits(store: 'memory' | 'postgres'): {
    committed(seconds: number): void;
    conflicted(code: string): void;
  } {
    const duration = this.#commitDuration.labels(store);
    return {
      committed: (seconds) => duration.observe(seconds),
      conflicted: (code) => this.#commitConflicts.inc({ code }),
    };
  }

  /** The exposition (Prometheus text format). */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
