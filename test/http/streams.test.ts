/**
 * The two NDJSON event streams over real sockets: a listening app, `node:http` clients, the body read
 * line by line as it arrives. inject() buffers whole responses, so it cannot show any of this.
 * Nothing here sleeps: every wait is on a line, an event or a response.
 */
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/core/model.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/store.js';
import { createTestApp, ManualClock, ref, type TestApp, useApp } from '../helpers/app.js';
import {
  contractValidators,
  httpRequest,
  type OpenStream,
  openStream,
  parseEvents,
  startStream,
} from '../helpers/ndjson.js';
import { nextServerStream, untilServerWaitsForDrain } from '../helpers/server-streams.js';
import { intercept, newTestStore } from '../helpers/stores.js';
import { until } from '../helpers/until.js';

// ---- helpers -------------------------------------------------------------------------------

async function listen(t: TestApp): Promise<string> {
  return t.app.listen({ port: 0, host: '127.0.0.1' });
}

async function call(base: string, method: string, path: string, body?: unknown) {
  const res = await httpRequest(base, path, { method, body });
  return { ...res, json: () => JSON.parse(res.body) as Record<string, unknown> };
}

async function start(base: string): Promise<{ runId: string; rootId: string }> {
  const res = await call(base, 'POST', '/v1/runs', { root_node_type_ref: ref('composite.root'), input: {} });
  expect(res.status, res.body).toBe(200);
  const run = res.json();
  return { runId: run.run_id as string, rootId: run.root_node_run_id as string };
}

/** Creates children (node type ids as given) under `parentId`; returns their ids in order. */
async function children(base: string, runId: string, parentId: string, typeIds: string[]): Promise<string[]> {
  const res = await call(base, 'POST', '/v1/node-runs', {
    run_id: runId,
    parent_node_run_id: parentId,
    node_runs: typeIds.map((id) => ({ node_type_ref: ref(id), inputs: {} })),
  });
  expect(res.status, res.body).toBe(200);
  return (res.json().node_runs as { node_run_id: string }[]).map((n) => n.node_run_id);
}

async function evaluate(base: string, nodeRunId: string, details: Record<string, unknown> = {}) {
  const res = await call(base, 'POST', `/v1/node-runs/${nodeRunId}:evaluation`, {
    evaluation_result: { status: 'success', details },
  });
  expect(res.status, res.body).toBe(204);
}

async function complete(base: string, nodeRunId: string, state = 'succeeded') {
  const res = await call(base, 'POST', `/v1/node-runs/${nodeRunId}:complete`, { state });
  expect(res.status, res.body).toBe(204);
}

async function cancel(base: string, runId: string) {
  const res = await call(base, 'POST', `/v1/runs/${runId}:cancel`);
  expect(res.status, res.body).toBe(200);
}

/** A whole stream over a socket: status, headers and validated events; the body must end by itself. */
async function readAll(base: string, path: string) {
  const stream = await openStream(base, path);
  expect(stream.status).toBe(200);
  expect(stream.headers['content-type']).toMatch(/^application\/x-ndjson/);
  const lines = await stream.lines.rest();
  return { lines, events: parseEvents(lines) };
}

async function openFollow(
  base: string,
  path: string,
  agent: http.Agent | false = false,
): Promise<OpenStream> {
  const stream = await openStream(base, path, agent);
  expect(stream.status).toBe(200);
  expect(stream.headers['content-type']).toMatch(/^application\/x-ndjson/);
  return stream;
}

async function nextEvents(stream: OpenStream, count: number): Promise<RunEvent[]> {
  return parseEvents(await stream.lines.take(count));
}

function expectSeqRun(events: readonly RunEvent[], first: number): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => first + i));
}

const summary = (events: readonly RunEvent[]) => events.map((e) => [e.seq, e.type, e.node_run_id ?? null]);

function expectErrorEnvelope(res: { status: number; headers: http.IncomingHttpHeaders; body: string }) {
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const body = JSON.parse(res.body) as { error: { code: string } };
  expect(contractValidators().validate('ErrorEnvelope', body)).toEqual([]);
  return body.error;
}

/** ~16 KB per event: a few hundred fill every buffer between a paused reader and the server. */
const BLOB = 'x'.repeat(16_000);

/**
 * Wraps a store (of the kind the test run uses) to count the live subscriptions per Run and announce
 * every subscribe and unsubscribe; `store` is what the app gets.
 */
class SubscriptionObserver {
  readonly store: Store;
  readonly #changes = new EventEmitter();
  readonly #counts = new Map<string, number>();

  constructor(inner: Store) {
    this.store = intercept(inner, {
      subscribe: (runId, listener) => {
        const off = inner.subscribe(runId, listener);
        this.#counts.set(runId, this.subscribers(runId) + 1);
        this.#changes.emit('subscribe', runId);
        let active = true;
        return () => {
          off();
          if (!active) return;
          active = false;
          this.#counts.set(runId, this.subscribers(runId) - 1);
          this.#changes.emit('unsubscribe', runId);
        };
      },
    });
  }

  subscribers(runId: string): number {
    return this.#counts.get(runId) ?? 0;
  }

  /** Runs with at least one live subscription. */
  subscribedRuns(): number {
    return [...this.#counts.values()].filter((count) => count > 0).length;
  }

  /** Resolves at the next subscribe to `runId` (a follow stream started reading). */
  nextSubscribe(runId: string): Promise<void> {
    return this.#next('subscribe', runId);
  }

  /** Resolves at the next unsubscribe from `runId`. */
  nextUnsubscribe(runId: string): Promise<void> {
    return this.#next('unsubscribe', runId);
  }

  #next(change: 'subscribe' | 'unsubscribe', runId: string): Promise<void> {
    return new Promise((resolve) => {
      const listener = (id: string) => {
        if (id !== runId) return;
        this.#changes.off(change, listener);
        resolve();
      };
      this.#changes.on(change, listener);
    });
  }
}

/** Like useApp, but every app's store is observed and the app is listening. */
function useObservedApp() {
  const created: TestApp[] = [];
  afterEach(async () => {
    const all = created.splice(0);
    await Promise.all(all.map((t) => t.close()));
    for (const t of all) expect(t.violations, 'responses that broke the contract').toEqual([]);
  });
  return async () => {
    const clock = new ManualClock();
    const store = new SubscriptionObserver(await newTestStore(clock));
    const t = await createTestApp({ clock, store: store.store });
    created.push(t);
    return { t, store, base: await listen(t) };
  };
}

/** root → A (composite) → A1 (atomic), root → B (atomic). */
async function buildTree(base: string) {
  const { runId, rootId } = await start(base);
  const [a, b] = await children(base, runId, rootId, ['composite.a', 'atomic.b']);
  const [a1] = await children(base, runId, a!, ['atomic.a1']);
  return { runId, rootId, a: a!, b: b!, a1: a1! };
}

// ---- tests ---------------------------------------------------------------------------------

describe('event streams over a socket: snapshot', () => {
  const app = useApp();

  it('GET /v1/runs/{id}/events is NDJSON, one RunEvent per line, seq 1..n, and ends by itself', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, a, a1 } = await buildTree(base);
    await evaluate(base, a1);
    await complete(base, a1);

    const raw = await httpRequest(base, `/v1/runs/${runId}/events`);
    expect(raw.status).toBe(200);
    expect(raw.headers['content-type']).toMatch(/^application\/x-ndjson/);
    expect(raw.body.endsWith('\n')).toBe(true);

    const { lines, events } = await readAll(base, `/v1/runs/${runId}/events`);
    expect(`${lines.join('\n')}\n`).toBe(raw.body);
    expectSeqRun(events, 1);
    expect(events.every((e) => e.run_id === runId)).toBe(true);
    expect(events.map((e) => e.type)).toEqual([
      'run_started',
      'node_run_assigned',
      'composite_decomposed',
      'node_run_assigned',
      'node_run_assigned',
      'composite_decomposed',
      'node_run_assigned',
      'node_evaluated',
      'atomic_executed',
    ]);
    expect(events[5]!.node_run_id).toBe(a);
    // follow=false is the same snapshot.
    expect((await readAll(base, `/v1/runs/${runId}/events?follow=false`)).lines).toEqual(lines);
  });

  it('answers 404 run_not_found for an unknown Run, with or without follow', async () => {
    const t = await app();
    const base = await listen(t);
    for (const query of ['', '?follow=true', '?after_seq=3']) {
      const res = await httpRequest(base, `/v1/runs/no_such_run/events${query}`);
      expect(res.status).toBe(404);
      expect(expectErrorEnvelope(res).code).toBe('run_not_found');
    }
  });

  it('answers 404 node_run_not_found for an unknown NodeRun, with or without follow', async () => {
    const t = await app();
    const base = await listen(t);
    await start(base);
    for (const query of ['', '?follow=true']) {
      const res = await httpRequest(base, `/v1/node-runs/no_such_node_run/events${query}`);
      expect(res.status).toBe(404);
      expect(expectErrorEnvelope(res).code).toBe('node_run_not_found');
    }
  });

  it.each([
    'follow=maybe',
    'follow=TRUE',
    'follow=',
    'follow=true&follow=false',
    'after_seq=-1',
    'after_seq=abc',
    'after_seq=1.5',
    'after_seq=',
    'after_seq=1&after_seq=2',
  ])('rejects ?%s with 400 invalid_request on both streams', async (query) => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    for (const path of [`/v1/runs/${runId}/events?${query}`, `/v1/node-runs/${rootId}/events?${query}`]) {
      const res = await httpRequest(base, path);
      expect(res.status, path).toBe(400);
      const error = expectErrorEnvelope(res) as { code: string; details?: { errors?: { path: string }[] } };
      expect(error.code).toBe('invalid_request');
      expect(error.details?.errors?.[0]?.path).toMatch(/^querystring\/(follow|after_seq)$/);
    }
  });

  it('after_seq=N resumes: only events with seq > N', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, a, a1 } = await buildTree(base);
    const all = (await readAll(base, `/v1/runs/${runId}/events`)).events;
    const n = all.length;
    for (const after of [0, 1, 3, n - 1, n, n + 5]) {
      const { events } = await readAll(base, `/v1/runs/${runId}/events?after_seq=${after}`);
      expect(events, `after_seq=${after}`).toEqual(all.filter((e) => e.seq > after));
    }
    const subtree = (await readAll(base, `/v1/node-runs/${a}/events`)).events;
    const { events } = await readAll(base, `/v1/node-runs/${a}/events?after_seq=${subtree[0]!.seq}`);
    expect(events).toEqual(subtree.slice(1));
    expect(events.map((e) => e.node_run_id)).toContain(a1);
  });

  it("a NodeRun's stream holds exactly its own and its descendants' events", async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId, a, b, a1 } = await buildTree(base);
    await evaluate(base, a1);
    await evaluate(base, b);
    await evaluate(base, a);
    await complete(base, b);
    await complete(base, a1);
    const all = (await readAll(base, `/v1/runs/${runId}/events`)).events;

    const { events } = await readAll(base, `/v1/node-runs/${a}/events`);
    expect(events).toEqual(all.filter((e) => e.node_run_id === a || e.node_run_id === a1));
    expect(summary(events)).toEqual([
      [4, 'node_run_assigned', a],
      [6, 'composite_decomposed', a],
      [7, 'node_run_assigned', a1],
      [8, 'node_evaluated', a1],
      [10, 'node_evaluated', a],
      [12, 'atomic_executed', a1],
    ]);

    const leaf = (await readAll(base, `/v1/node-runs/${a1}/events`)).events;
    expect(leaf).toEqual(all.filter((e) => e.node_run_id === a1));
    const other = (await readAll(base, `/v1/node-runs/${b}/events`)).events;
    expect(other).toEqual(all.filter((e) => e.node_run_id === b));
    // The root's stream is every event that names a NodeRun; run-level events have none.
    const root = (await readAll(base, `/v1/node-runs/${rootId}/events`)).events;
    expect(root).toEqual(all.filter((e) => e.node_run_id !== undefined));
  });
});

describe('event streams over a socket: follow=true', () => {
  const app = useApp();
  const observedApp = useObservedApp();

  it('writes new events on the open stream as they happen and ends after run_completed', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    expect(stream.headers['cache-control']).toBe('no-cache');
    const live: RunEvent[] = [];
    const next = async (count: number) => {
      const events = await nextEvents(stream, count);
      live.push(...events);
      return events;
    };

    expect(summary(await next(2))).toEqual([
      [1, 'run_started', null],
      [2, 'node_run_assigned', rootId],
    ]);

    const [a, b] = await children(base, runId, rootId, ['composite.a', 'atomic.b']);
    expect(summary(await next(3))).toEqual([
      [3, 'composite_decomposed', rootId],
      [4, 'node_run_assigned', a],
      [5, 'node_run_assigned', b],
    ]);

    const [a1] = await children(base, runId, a!, ['atomic.a1']);
    expect(summary(await next(2))).toEqual([
      [6, 'composite_decomposed', a],
      [7, 'node_run_assigned', a1],
    ]);

    await evaluate(base, a1!, { score: 1 });
    const [evaluated] = await next(1);
    expect(summary([evaluated!])).toEqual([[8, 'node_evaluated', a1]]);
    expect(evaluated!.data).toMatchObject({ status: 'success', details: { score: 1 } });

    await complete(base, a1!);
    expect(summary(await next(1))).toEqual([[9, 'atomic_executed', a1]]);

    // Completing the root ends the Run; run_completed is the last line, then the body ends.
    await complete(base, rootId);
    const [last] = await next(1);
    expect(summary([last!])).toEqual([[10, 'run_completed', rootId]]);
    expect(last!.data).toMatchObject({ state: 'succeeded' });
    expect(await stream.lines.next()).toBeUndefined();
    expect(stream.res.complete).toBe(true);

    // What the live stream showed is exactly the stored log.
    expect((await readAll(base, `/v1/runs/${runId}/events`)).events).toEqual(live);
  });

  it('ends after the Run is canceled, with run_completed as the last line', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    await children(base, runId, rootId, ['atomic.x', 'atomic.y']);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const existing = await nextEvents(stream, 5);
    expectSeqRun(existing, 1);

    await cancel(base, runId);
    const [last] = await nextEvents(stream, 1);
    expect(summary([last!])).toEqual([[6, 'run_completed', null]]);
    expect(last!.data).toMatchObject({ state: 'canceled', canceled_node_run_count: 3 });
    expect(await stream.lines.next()).toBeUndefined();
  });

  it('after_seq with follow starts after N and then follows', async () => {
    const { store, base } = await observedApp();
    const { runId, rootId } = await start(base);
    // Nothing to send yet, so do not wait for the headers (see the test below): wait until the
    // stream has subscribed, then commit.
    const subscribed = store.nextSubscribe(runId);
    const pending = startStream(base, `/v1/runs/${runId}/events?follow=true&after_seq=2`);
    await subscribed;
    const [x] = await children(base, runId, rootId, ['atomic.x']);
    const stream = await pending.response;
    expect(stream.status).toBe(200);
    expect(summary(await nextEvents(stream, 2))).toEqual([
      [3, 'composite_decomposed', rootId],
      [4, 'node_run_assigned', x],
    ]);
    await cancel(base, runId);
    expect(summary(await stream.lines.rest().then(parseEvents))).toEqual([[5, 'run_completed', null]]);
  });

  it.each([
    ['run', (runId: string, _rootId: string) => `/v1/runs/${runId}/events?follow=true&after_seq=2`],
    [
      'node-run',
      (_runId: string, rootId: string) => `/v1/node-runs/${rootId}/events?follow=true&after_seq=2`,
    ],
  ])('a %s follow stream with nothing to send yet answers 200 with its headers at once', async (_, path) => {
    const { store, base } = await observedApp();
    const { runId, rootId } = await start(base);
    // A client resuming after the last event it saw (after_seq = last seq) on a quiet Run.
    const subscribed = store.nextSubscribe(runId);
    const pending = startStream(base, path(runId, rootId));
    let answered = false;
    void pending.response.then(() => {
      answered = true;
    });
    await subscribed;
    // The server has written its status line and headers (writeHead comes before the subscription);
    // give the loopback a bounded number of event-loop turns to carry them. No timer involved.
    for (let turn = 0; turn < 200 && !answered; turn++) await new Promise(setImmediate);
    expect(answered, 'the client got the status and headers of an idle follow stream').toBe(true);

    const stream = await pending.response;
    expect(stream.status).toBe(200);
    await cancel(base, runId);
    await stream.lines.rest();
  });

  it('on a Run that already finished returns the snapshot and ends (both streams)', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId, a, a1 } = await buildTree(base);
    await complete(base, a1);
    await complete(base, rootId, 'failed');
    const all = (await readAll(base, `/v1/runs/${runId}/events`)).events;
    expect(all.at(-1)!.type).toBe('run_completed');

    expect((await readAll(base, `/v1/runs/${runId}/events?follow=true`)).events).toEqual(all);
    expect((await readAll(base, `/v1/runs/${runId}/events?follow=true&after_seq=3`)).events).toEqual(
      all.filter((e) => e.seq > 3),
    );
    expect((await readAll(base, `/v1/node-runs/${a}/events?follow=true`)).events).toEqual(
      all.filter((e) => e.node_run_id === a || e.node_run_id === a1),
    );
  });

  it("a NodeRun's follow stream carries only its subtree's new events and ends when the Run is canceled", async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId, a, b, a1 } = await buildTree(base);
    const stream = await openFollow(base, `/v1/node-runs/${a}/events?follow=true`);
    expect(summary(await nextEvents(stream, 3))).toEqual([
      [4, 'node_run_assigned', a],
      [6, 'composite_decomposed', a],
      [7, 'node_run_assigned', a1],
    ]);

    // Events outside the subtree (B, a new sibling under the root) are not written; the next line
    // on the stream is the next event of the subtree, so nothing in between slipped through.
    await evaluate(base, b);
    const [c] = await children(base, runId, rootId, ['composite.c']);
    await children(base, runId, c!, ['atomic.c1']);
    const [a2] = await children(base, runId, a, ['composite.a2']);
    expect(summary(await nextEvents(stream, 2))).toEqual([
      [13, 'composite_decomposed', a],
      [14, 'node_run_assigned', a2],
    ]);
    // A grandchild created after the stream opened is part of the subtree too.
    const [a2x] = await children(base, runId, a2!, ['atomic.a2x']);
    await evaluate(base, b);
    await evaluate(base, a2x!);
    expect(summary(await nextEvents(stream, 3))).toEqual([
      [15, 'composite_decomposed', a2],
      [16, 'node_run_assigned', a2x],
      [18, 'node_evaluated', a2x],
    ]);

    // run_completed (no node_run_id) is not part of this stream, but the stream must still end.
    await cancel(base, runId);
    expect(await stream.lines.next()).toBeUndefined();
    expect(stream.res.complete).toBe(true);
  });

  it("a NodeRun's follow stream ends when the root completes", async () => {
    const t = await app();
    const base = await listen(t);
    const { rootId, a, a1 } = await buildTree(base);
    const stream = await openFollow(base, `/v1/node-runs/${a1}/events?follow=true`);
    expect(summary(await nextEvents(stream, 1))).toEqual([[7, 'node_run_assigned', a1]]);
    await complete(base, a1);
    expect(summary(await nextEvents(stream, 1))).toEqual([[8, 'atomic_executed', a1]]);
    await complete(base, a);
    await complete(base, rootId);
    expect(await stream.lines.next()).toBeUndefined();
  });

  it("a NodeRun's follow stream resumed after its descendants were created still carries their events", async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId, a, b } = await buildTree(base);
    const [deep] = await children(base, runId, a, ['composite.deep']);
    const [leaf] = await children(base, runId, deep!, ['atomic.leaf']);
    const created = (await readAll(base, `/v1/runs/${runId}/events`)).events.length;
    // Resumes after every creation event: the stream has never seen `deep` or `leaf` assigned.
    const stream = await openFollow(base, `/v1/node-runs/${a}/events?follow=true&after_seq=${created}`);
    await evaluate(base, b);
    await evaluate(base, leaf!, { depth: 3 });
    await evaluate(base, rootId);
    await evaluate(base, deep!);
    expect(summary(await nextEvents(stream, 2))).toEqual([
      [created + 2, 'node_evaluated', leaf],
      [created + 4, 'node_evaluated', deep],
    ]);
    await cancel(base, runId);
    expect(await stream.lines.rest()).toEqual([]);
  });

  it('a follow stream resuming after a seq the Run has not reached gets only later events', async () => {
    const { store, base } = await observedApp();
    const { runId, rootId } = await start(base);
    const subscribed = store.nextSubscribe(runId);
    const ahead = startStream(base, `/v1/runs/${runId}/events?follow=true&after_seq=6`);
    await subscribed;
    const fromStart = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    await fromStart.lines.take(2);
    const ids = await children(base, runId, rootId, ['atomic.x', 'atomic.y']);
    for (const id of ids) await evaluate(base, id);
    await evaluate(base, rootId);
    await cancel(base, runId);
    const all = parseEvents(await fromStart.lines.rest());
    expectSeqRun(all, 3);
    const stream = await ahead.response;
    expect(stream.status).toBe(200);
    expect(parseEvents(await stream.lines.rest())).toEqual(all.filter((e) => e.seq > 6));
  });

  it('several follow streams on one Run see the same lines', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const streams = await Promise.all(
      [0, 1, 2].map(() => openFollow(base, `/v1/runs/${runId}/events?follow=true`)),
    );
    for (const stream of streams) await stream.lines.take(2);
    const ids = await children(base, runId, rootId, ['atomic.x', 'atomic.y']);
    for (const id of ids) await evaluate(base, id);
    await cancel(base, runId);
    const seen = await Promise.all(streams.map((s) => s.lines.rest()));
    expect(seen[0]).toHaveLength(6);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
    expectSeqRun(parseEvents(seen[0]!), 3);
  });
});

describe('event streams over a socket: disconnect', () => {
  const app = useApp();
  const observedApp = useObservedApp();

  it('a client that disconnects frees its place at once; the last one out ends the Run subscription', async () => {
    const { t, store, base } = await observedApp();
    expect(t.app.coordinator.store).toBe(store.store);
    const { runId, rootId } = await start(base);

    const server = nextServerStream(t);
    const first = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const { res: serverRes } = await server;
    const second = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const third = await openFollow(base, `/v1/node-runs/${rootId}/events?follow=true`);
    await Promise.all([first.lines.take(2), second.lines.take(2), third.lines.take(1)]);
    // The streams of a Run share one subscription to its commits.
    expect(store.subscribers(runId)).toBe(1);
    expect(store.subscribedRuns()).toBe(1);
    expect(t.app.eventStreams.stats()).toMatchObject({ followStreams: 3, followedRuns: 1 });

    const serverClosed = once(serverRes, 'close');
    first.destroy();
    await serverClosed;
    expect(t.app.eventStreams.stats()).toMatchObject({ followStreams: 2, followedRuns: 1 });
    expect(store.subscribers(runId)).toBe(1);

    // The others still follow, and a commit after the disconnect is not disturbed by it.
    const [x] = await children(base, runId, rootId, ['atomic.x']);
    expect(summary(await nextEvents(second, 2))).toEqual([
      [3, 'composite_decomposed', rootId],
      [4, 'node_run_assigned', x],
    ]);

    second.destroy();
    const unsubscribed = store.nextUnsubscribe(runId);
    third.destroy();
    await unsubscribed;
    expect(store.subscribers(runId)).toBe(0);
    expect(store.subscribedRuns()).toBe(0);
    expect(t.app.eventStreams.stats()).toEqual({ followStreams: 0, followedRuns: 0, feedBytes: 0 });
    await evaluate(base, x!);
    expect((await readAll(base, `/v1/runs/${runId}/events`)).events).toHaveLength(5);
  });

  it('a client that disconnects while the server waits for drain frees its subscription', async () => {
    const { t, store, base } = await observedApp();
    const { runId, rootId } = await start(base);
    const server = nextServerStream(t);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const { res: serverRes, stats } = await server;
    await stream.lines.take(2);
    stream.lines.pause();
    // ~16 MB that the paused reader does not take: the server ends up waiting for 'drain'.
    for (let i = 0; i < 1000; i++) await evaluate(base, rootId, { i, blob: BLOB });
    await untilServerWaitsForDrain(serverRes);
    expect(stats.lines).toBeLessThan(1002);

    const unsubscribed = store.nextUnsubscribe(runId);
    const serverClosed = once(serverRes, 'close');
    stream.destroy();
    await serverClosed;
    await unsubscribed;
    expect(store.subscribers(runId)).toBe(0);
    expect(store.subscribedRuns()).toBe(0);
  });

  it('a client that disconnects while its stream reads from the store frees its subscription', async () => {
    // The stream reads a page of events; the client goes away before the page arrives. Any store
    // whose reads take I/O makes this window wide; here the read is held until the server has seen
    // the disconnect.
    const clock = new ManualClock();
    const inner = await newTestStore(clock);
    let holdNextRead = false;
    let reading = () => {};
    let release = () => {};
    const observer = new SubscriptionObserver(
      intercept(inner, {
        async events(runId, afterSeq, limit) {
          const page = await inner.events(runId, afterSeq, limit);
          if (holdNextRead) {
            holdNextRead = false;
            reading();
            await new Promise<void>((resolve) => (release = resolve));
          }
          return page;
        },
      }),
    );
    const t = await app({ clock, store: observer.store });
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const server = nextServerStream(t);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const { res: serverRes } = await server;
    await stream.lines.take(2);
    expect(observer.subscribers(runId)).toBe(1);

    holdNextRead = true;
    const read = new Promise<void>((resolve) => (reading = resolve));
    await children(base, runId, rootId, ['atomic.x']);
    await read;
    const unsubscribed = observer.nextUnsubscribe(runId);
    const serverClosed = once(serverRes, 'close');
    stream.destroy();
    await serverClosed;
    release();
    // The rest takes a few event-loop turns on any store: the page is already read.
    await until(() => observer.subscribers(runId) === 0, 'the stream let go of its subscription', 100);
    await unsubscribed;
  });

  it('the MemoryStore reports no subscribers after a disconnect', async () => {
    // The memory store's own bookkeeping, on every test run (the observed tests above cover every
    // store through its interface).
    const memory = new MemoryStore({ maxFinishedRuns: 100 });
    const t = await app({ store: memory });
    const base = await listen(t);
    const { runId } = await start(base);
    const server = nextServerStream(t);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const { res: serverRes } = await server;
    await stream.lines.take(2);
    expect(memory.stats().subscribedRuns).toBe(1);

    const serverClosed = once(serverRes, 'close');
    stream.destroy();
    await serverClosed;
    // The unsubscribe follows the server's 'close' within a few event-loop turns; bounded, no timer.
    for (let turn = 0; turn < 100 && memory.stats().subscribedRuns > 0; turn++) {
      await new Promise(setImmediate);
    }
    expect(memory.stats().subscribedRuns).toBe(0);
  });
});

describe('event streams over a socket: backpressure', () => {
  const app = useApp();

  it('a reader that stops reading makes the server wait, not buffer; resuming delivers every event', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const server = nextServerStream(t);
    const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const { res: serverRes, stats } = await server;
    expect(summary(await nextEvents(stream, 2))).toEqual([
      [1, 'run_started', null],
      [2, 'node_run_assigned', rootId],
    ]);
    stream.lines.pause();

    const COUNT = 2000;
    for (let i = 0; i < COUNT; i++) await evaluate(base, rootId, { i, blob: BLOB });
    const lineBytes = Buffer.byteLength(
      JSON.stringify({
        run_id: runId,
        node_run_id: rootId,
        seq: COUNT + 2,
        type: 'node_evaluated',
        time: '2026-01-01T00:00:00.000Z',
        data: { status: 'success', details: { i: COUNT, blob: BLOB } },
      }),
    );
    const totalBytes = COUNT * lineBytes;

    // All ~32 MB are committed; the paused reader took none of it. The server was told to wait,
    // and it is waiting: it has not pushed every event into the connection.
    await untilServerWaitsForDrain(serverRes);
    expect(stats.refused).toBeGreaterThan(0);
    expect(stats.lines).toBeLessThan(COUNT + 2);
    // It never held more than the high-water mark plus one line in memory for the response: a
    // tiny fraction of what the reader has not taken.
    const bound = serverRes.writableHighWaterMark + lineBytes + 1;
    expect(stats.maxBuffered).toBeLessThanOrEqual(bound);
    expect(bound).toBeLessThan(totalBytes / 4);

    // Resume: every event arrives, in order, without gaps.
    stream.lines.resume();
    const rest = await nextEvents(stream, COUNT);
    expectSeqRun(rest, 3);
    expect(rest.map((e) => (e.data as { details: { i: number } }).details.i)).toEqual(
      Array.from({ length: COUNT }, (_, i) => i),
    );
    await cancel(base, runId);
    expect(summary(await stream.lines.rest().then(parseEvents))).toEqual([
      [COUNT + 3, 'run_completed', null],
    ]);
    expect(stats.maxBuffered).toBeLessThanOrEqual(bound);
  });
});

describe('event streams over a socket: shutdown', () => {
  it('close() ends open follow streams cleanly and resolves', async () => {
    const t = await createTestApp();
    try {
      const base = await listen(t);
      const { runId, rootId } = await start(base);
      const runStream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
      const nodeStream = await openFollow(base, `/v1/node-runs/${rootId}/events?follow=true`);
      await runStream.lines.take(2);
      await nodeStream.lines.take(1);
      const [x] = await children(base, runId, rootId, ['atomic.x']);
      await runStream.lines.take(2);
      await nodeStream.lines.take(2);

      await t.app.close();
      // Clean end of the chunked body: no cut-off line, no aborted connection.
      expect(await runStream.lines.rest()).toEqual([]);
      expect(await nodeStream.lines.rest()).toEqual([]);
      expect(runStream.res.complete).toBe(true);
      expect(nodeStream.res.complete).toBe(true);
      expect(x).toBeDefined();
    } finally {
      await t.app.close();
    }
    expect(t.violations).toEqual([]);
  });

  it('close() with a reader that is behind still ends its stream cleanly, with every line whole', async () => {
    const t = await createTestApp();
    try {
      const base = await listen(t);
      const { runId, rootId } = await start(base);
      const server = nextServerStream(t);
      const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
      const { res: serverRes } = await server;
      await stream.lines.take(2);
      stream.lines.pause();
      for (let i = 0; i < 1000; i++) await evaluate(base, rootId, { i, blob: BLOB });
      // The server holds unsent lines in memory and waits for the reader.
      await untilServerWaitsForDrain(serverRes);

      const closing = t.app.close();
      stream.lines.resume();
      // Shutdown may stop the stream early, but what the client gets must end cleanly: the
      // terminating chunk arrives, no line is cut, no event is skipped.
      const rest = parseEvents(await stream.lines.rest());
      await closing;
      expect(stream.res.complete).toBe(true);
      expectSeqRun(rest, 3);
    } finally {
      await t.app.close();
    }
    expect(t.violations).toEqual([]);
  });

  it('while close() waits for a stream, a request on a kept-alive connection gets a 503 envelope', async () => {
    const t = await createTestApp();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const base = await listen(t);
      const { runId, rootId } = await start(base);
      expect((await httpRequest(base, '/v1/health', { agent })).status).toBe(200);
      const server = nextServerStream(t);
      const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
      const { res: serverRes } = await server;
      await stream.lines.take(2);
      stream.lines.pause();
      for (let i = 0; i < 1000; i++) await evaluate(base, rootId, { i, blob: BLOB });
      await untilServerWaitsForDrain(serverRes);

      const closing = t.app.close();
      const refused = await httpRequest(base, `/v1/runs/${runId}`, { agent });
      expect(refused.status).toBe(503);
      expect(refused.headers.connection).toBe('close');
      expect(JSON.parse(refused.body)).toEqual({
        error: { code: 'service_unavailable', message: 'The service is shutting down', retryable: true },
      });
      stream.lines.resume();
      await stream.lines.rest();
      await closing;
    } finally {
      agent.destroy();
      await t.app.close();
    }
    expect(t.violations).toEqual([]);
  });

  it('close() ends a follow stream held on a keep-alive connection and resolves', async () => {
    const t = await createTestApp();
    const agent = new http.Agent({ keepAlive: true });
    try {
      const base = await listen(t);
      const { runId } = await start(base);
      // Reuse one keep-alive connection: a normal request first, then the stream on the same socket.
      expect((await httpRequest(base, `/v1/runs/${runId}`, { agent })).status).toBe(200);
      const stream = await openFollow(base, `/v1/runs/${runId}/events?follow=true`, agent);
      await stream.lines.take(2);
      await t.app.close();
      expect(await stream.lines.rest()).toEqual([]);
      expect(stream.res.complete).toBe(true);
    } finally {
      agent.destroy();
      await t.app.close();
    }
    expect(t.violations).toEqual([]);
  });
});

describe('event streams over a socket: concurrent writers', () => {
  const app = useApp();

  it('50 concurrent evaluations on one Run give seq 1..n with no gaps and no duplicates', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const ids = await children(
      base,
      runId,
      rootId,
      Array.from({ length: 50 }, (_, i) => `atomic.n${i}`),
    );
    const follow = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    try {
      await Promise.all(
        ids.map((id, i) =>
          httpRequest(base, `/v1/node-runs/${id}:evaluation`, {
            method: 'POST',
            agent,
            body: { evaluation_result: { status: 'success', details: { i } } },
          }).then((res) => expect(res.status, res.body).toBe(204)),
        ),
      );
    } finally {
      agent.destroy();
    }
    await cancel(base, runId);

    const live = parseEvents(await follow.lines.rest());
    const { events } = await readAll(base, `/v1/runs/${runId}/events`);
    const n = 2 + 1 + 50 + 50 + 1;
    expect(events).toHaveLength(n);
    expectSeqRun(events, 1);
    expect(new Set(events.map((e) => e.seq)).size).toBe(n);
    expect(live).toEqual(events);
    const evaluated = events.filter((e) => e.type === 'node_evaluated');
    expect(evaluated.map((e) => e.node_run_id).sort()).toEqual([...ids].sort());
    expect(events.at(-1)!.type).toBe('run_completed');
  });
});
