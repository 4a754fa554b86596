/**
 * What event streams cost the process, over real sockets: readers that stop reading (snapshot and
 * follow), many follow streams on one busy Run, and the caps on follow streams. Memory is asserted
 * on the server's own bytes buffered per response, never on RSS or timing; nothing here sleeps.
 */
import { once } from 'node:events';
import type http from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AppOptions } from '../../src/app.js';
import type { EventDraft, RunEvent } from '../../src/core/model.js';
import { RUN_ONLY } from '../../src/core/runs.js';
import { FANOUT_SLICE } from '../../src/events/scheduler.js';
import { STREAM_BYTES } from '../../src/events/streams.js';
import { MemoryStore } from '../../src/store/memory.js';
import { createTestApp, ref, type TestApp, useApp } from '../helpers/app.js';
import {
  contractValidators,
  httpRequest,
  type OpenStream,
  openStream,
  parseEvents,
} from '../helpers/ndjson.js';
import { StreamWatch, untilServerWaitsForDrain } from '../helpers/server-streams.js';

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

async function cancel(base: string, runId: string) {
  const res = await call(base, 'POST', `/v1/runs/${runId}:cancel`);
  expect(res.status, res.body).toBe(200);
}

async function openFollow(base: string, path: string): Promise<OpenStream> {
  const stream = await openStream(base, path);
  expect(stream.status, path).toBe(200);
  expect(stream.headers['content-type']).toMatch(/^application\/x-ndjson/);
  return stream;
}

function expectErrorEnvelope(res: { status: number; headers: http.IncomingHttpHeaders; body: string }) {
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const body = JSON.parse(res.body) as { error: { code: string; retryable?: boolean } };
  expect(contractValidators().validate('ErrorEnvelope', body)).toEqual([]);
  return body.error;
}

const lineBytes = (line: string) => Buffer.byteLength(line) + 1;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** `count` node_evaluated drafts for `nodeRunId`, each carrying `blob`, committed in one step. */
function evaluationBatch(nodeRunId: string, count: number, blob: string, offset = 0): EventDraft[] {
  return range(count).map((i) => ({
    type: 'node_evaluated',
    time: '2026-01-01T00:00:00.000Z',
    node_run_id: nodeRunId,
    data: { status: 'success', details: { i: offset + i, blob } },
  }));
}

const isRunEvent = (value: unknown): value is RunEvent =>
  typeof value === 'object' && value !== null && 'run_id' in value && 'seq' in value && 'type' in value;

/** RunEvents one `JSON.stringify` call serialises: the value itself, or the events of an array. */
const runEventsIn = (value: unknown): number =>
  Array.isArray(value) ? value.filter(isRunEvent).length : isRunEvent(value) ? 1 : 0;

// ---- tests ---------------------------------------------------------------------------------

describe('stalled readers', () => {
  const app = useApp();

  it('stalled snapshot readers each hold at most one line beyond the high-water mark, then get every byte', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    // 256 events of ~64 KB: 16 MB of log, four times what a paused loopback connection absorbs.
    const blob = 'x'.repeat(64_000);
    for (let i = 0; i < 256; i++) await evaluate(base, rootId, { i, blob });
    const expected = (await httpRequest(base, `/v1/runs/${runId}/events`)).body;
    const longestLine = Math.max(...expected.split('\n').map(lineBytes));

    const watch = new StreamWatch(t);
    const readers: OpenStream[] = [];
    // A failed assertion must not leave paused readers behind for the app's close to wait on.
    try {
      for (let i = 0; i < 3; i++) {
        const server = watch.next();
        const reader = await openStream(base, `/v1/runs/${runId}/events`);
        reader.lines.pause();
        readers.push(reader);
        await untilServerWaitsForDrain((await server).res);
      }
      watch.stop();

      for (const { res, stats } of watch.streams) {
        expect(stats.refused, 'the server was told to wait').toBeGreaterThan(0);
        expect(stats.lines, 'lines written while the reader is stalled').toBeLessThan(256);
        expect(stats.maxBuffered).toBeLessThanOrEqual(res.writableHighWaterMark + longestLine);
      }

      for (const reader of readers) reader.lines.resume();
      const bodies = await Promise.all(readers.map((r) => r.lines.rest()));
      for (const lines of bodies) expect(`${lines.join('\n')}\n`).toBe(expected);
      for (const { res, stats } of watch.streams) {
        expect(stats.maxBuffered).toBeLessThanOrEqual(res.writableHighWaterMark + longestLine);
      }
    } finally {
      for (const reader of readers) reader.destroy();
    }
  });

  it('a stalled follow stream holds at most one line beyond the high-water mark while a live one beside it gets a batch of large events', async () => {
    const store = new MemoryStore({ maxFinishedRuns: 10 });
    const t = await app({ store });
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const watch = new StreamWatch(t);
    const stalledServer = watch.next();
    const stalled = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    const live = await openFollow(base, `/v1/runs/${runId}/events?follow=true`);
    watch.stop();
    try {
      await Promise.all([stalled.lines.take(2), live.lines.take(2)]);
      stalled.lines.pause();

      // One commit of 64 events of 256 KB each (16 MB), then a second one.
      const blob = 'y'.repeat(256_000);
      await store.mutate(runId, RUN_ONLY, () => ({
        value: null,
        changes: { events: evaluationBatch(rootId, 64, blob) },
      }));
      await store.mutate(runId, RUN_ONLY, () => ({
        value: null,
        changes: { events: evaluationBatch(rootId, 16, blob, 64) },
      }));

      // The live reader gets all 80 events while the stalled one is still stalled.
      const liveEvents = parseEvents(await live.lines.take(80));
      expect(liveEvents.map((e) => e.seq)).toEqual(range(80).map((i) => i + 3));
      const { res, stats } = await stalledServer;
      await untilServerWaitsForDrain(res);
      const longestLine = Math.max(...liveEvents.map((e) => lineBytes(JSON.stringify(e))));
      expect(stats.lines, 'lines written to the stalled reader').toBeLessThan(2 + 80);
      expect(stats.maxBuffered).toBeLessThanOrEqual(res.writableHighWaterMark + longestLine);
      // The Run's shared feed does not keep the 16 MB for the stalled reader either: it holds at
      // most its window and one read, and the stalled reader will read its lines from the log.
      const { feedBytes } = t.app.eventStreams.stats();
      expect(feedBytes).toBeLessThanOrEqual(STREAM_BYTES.window + STREAM_BYTES.read + longestLine);

      stalled.lines.resume();
      const caughtUp = parseEvents(await stalled.lines.take(80));
      expect(caughtUp).toEqual(liveEvents);
      await cancel(base, runId);
      const [stalledLast, liveLast] = await Promise.all([stalled.lines.rest(), live.lines.rest()]);
      expect(stalledLast).toEqual(liveLast);
      expect(parseEvents(liveLast).map((e) => e.type)).toEqual(['run_completed']);
      expect(stats.maxBuffered).toBeLessThanOrEqual(res.writableHighWaterMark + longestLine);
    } finally {
      // A failed assertion must not leave a paused reader behind for the app's close to wait on.
      stalled.destroy();
      live.destroy();
    }
  });
});

describe('fan-out: many follow streams on one Run', () => {
  const app = useApp();

  it('100 follow streams get identical bytes, and each new event is serialised once, not once per stream', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const runStreams = await Promise.all(
      range(50).map(() => openFollow(base, `/v1/runs/${runId}/events?follow=true`)),
    );
    const nodeStreams = await Promise.all(
      range(50).map(() => openFollow(base, `/v1/node-runs/${rootId}/events?follow=true`)),
    );
    await Promise.all([
      ...runStreams.map((s) => s.lines.take(2)),
      ...nodeStreams.map((s) => s.lines.take(1)),
    ]);

    const stringify = vi.spyOn(JSON, 'stringify');
    let serialised: number;
    try {
      const [x] = await children(base, runId, rootId, ['atomic.x', 'atomic.y']);
      await evaluate(base, x!, { score: 1 });
      await evaluate(base, rootId);
      await cancel(base, runId);
      await Promise.all([...runStreams, ...nodeStreams].map((s) => s.lines.rest()));
      serialised = stringify.mock.calls.reduce((sum, [value]) => sum + runEventsIn(value), 0);
    } finally {
      stringify.mockRestore();
    }
    const { body } = await httpRequest(base, `/v1/runs/${runId}/events?after_seq=2`);
    const newEvents = parseEvents(body.trimEnd().split('\n'));
    expect(newEvents.map((e) => e.type)).toEqual([
      'composite_decomposed',
      'node_run_assigned',
      'node_run_assigned',
      'node_evaluated',
      'node_evaluated',
      'run_completed',
    ]);
    expect(serialised, 'RunEvents serialised while 100 streams followed').toBe(newEvents.length);
  });

  it('100 follow streams receive byte-identical bodies equal to the snapshot', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const runStreams = await Promise.all(
      range(60).map(() => openFollow(base, `/v1/runs/${runId}/events?follow=true`)),
    );
    const nodeStreams = await Promise.all(
      range(40).map(() => openFollow(base, `/v1/node-runs/${rootId}/events?follow=true`)),
    );
    const [x] = await children(base, runId, rootId, ['atomic.x', 'atomic.y']);
    for (let i = 0; i < 20; i++) await evaluate(base, i % 2 ? rootId : x!, { i });
    await cancel(base, runId);
    const runBodies = await Promise.all(runStreams.map((s) => s.lines.rest()));
    const nodeBodies = await Promise.all(nodeStreams.map((s) => s.lines.rest()));
    const snapshot = (await httpRequest(base, `/v1/runs/${runId}/events`)).body.trimEnd().split('\n');
    for (const lines of runBodies) expect(lines).toEqual(snapshot);
    const subtree = snapshot.filter((line) => (JSON.parse(line) as RunEvent).node_run_id !== undefined);
    for (const lines of nodeBodies) expect(lines).toEqual(subtree);
  });

  it('feeding 200 follow streams yields to the event loop between bounded slices', async () => {
    const t = await app();
    const base = await listen(t);
    const { runId, rootId } = await start(base);
    const watch = new StreamWatch(t);
    const streams = await Promise.all(
      range(200).map(() => openFollow(base, `/v1/runs/${runId}/events?follow=true`)),
    );
    await Promise.all(streams.map((s) => s.lines.take(2)));

    // One mark per event-loop turn (check phase): the server writes between two marks are what it
    // did in one turn without letting other sockets (other requests) be served.
    const marks: number[] = [];
    let probing = true;
    const probe = () => {
      marks.push(watch.writes);
      if (probing) setImmediate(probe);
    };
    setImmediate(probe);
    await evaluate(base, rootId, { fanout: true });
    await Promise.all(streams.map((s) => s.lines.take(1)));
    probing = false;
    // The probe queued before this one takes the last mark.
    await new Promise(setImmediate);
    watch.stop();

    const perTurn = marks.slice(1).map((mark, i) => mark - marks[i]!);
    expect(marks.at(-1)! - marks[0]!, 'writes observed while probing').toBeGreaterThanOrEqual(200);
    expect(Math.max(...perTurn), 'writes in one event-loop turn').toBeLessThanOrEqual(FANOUT_SLICE.streams);
    await cancel(base, runId);
    await Promise.all(streams.map((s) => s.lines.rest()));
  });
});

describe('caps on follow streams', () => {
  const created: TestApp[] = [];
  afterEach(async () => {
    const all = created.splice(0);
    await Promise.all(all.map((t) => t.close()));
    for (const t of all) expect(t.violations, 'responses that broke the contract').toEqual([]);
  });
  const capped = async (options: Partial<AppOptions>) => {
    const t = await createTestApp({ options });
    created.push(t);
    return { t, base: await listen(t) };
  };

  it('a follow stream beyond the per-Run cap gets a retryable 503 envelope; snapshots and other Runs are not refused', async () => {
    const { base } = await capped({ maxFollowStreamsPerRun: 2, maxFollowStreams: 100 });
    const a = await start(base);
    const b = await start(base);
    const first = await openFollow(base, `/v1/runs/${a.runId}/events?follow=true`);
    const second = await openFollow(base, `/v1/node-runs/${a.rootId}/events?follow=true`);

    for (const path of [
      `/v1/runs/${a.runId}/events?follow=true`,
      `/v1/node-runs/${a.rootId}/events?follow=true&after_seq=1`,
    ]) {
      const refused = await httpRequest(base, path);
      expect(refused.status, path).toBe(503);
      const error = expectErrorEnvelope(refused);
      expect(error).toMatchObject({
        code: 'service_unavailable',
        retryable: true,
        details: { limit: 'follow_streams_per_run', max: 2 },
      });
    }
    const snapshot = await httpRequest(base, `/v1/runs/${a.runId}/events`);
    expect(snapshot.status).toBe(200);
    expect(parseEvents(snapshot.body.trimEnd().split('\n'))).toHaveLength(2);
    const other = await openFollow(base, `/v1/runs/${b.runId}/events?follow=true`);
    await other.lines.take(2);
    await Promise.all([first.lines.take(2), second.lines.take(1)]);
  });

  it('a follow stream beyond the total cap gets a retryable 503 envelope until a stream ends', async () => {
    const { t, base } = await capped({ maxFollowStreamsPerRun: 10, maxFollowStreams: 3 });
    const runs = [await start(base), await start(base), await start(base)];
    const watch = new StreamWatch(t);
    const open = [];
    for (const run of runs.slice(0, 2))
      open.push(await openFollow(base, `/v1/runs/${run.runId}/events?follow=true`));
    open.push(await openFollow(base, `/v1/node-runs/${runs[0]!.rootId}/events?follow=true`));
    watch.stop();

    const refused = await httpRequest(base, `/v1/runs/${runs[2]!.runId}/events?follow=true`);
    expect(refused.status).toBe(503);
    expect(expectErrorEnvelope(refused)).toMatchObject({
      code: 'service_unavailable',
      retryable: true,
      details: { limit: 'follow_streams', max: 3 },
    });

    // A client that disconnects frees its slot.
    const gone = once(watch.streams[0]!.res, 'close');
    open[0]!.destroy();
    await gone;
    const replacement = await openFollow(base, `/v1/runs/${runs[2]!.runId}/events?follow=true`);
    await replacement.lines.take(2);

    // A Run that finishes ends its streams and frees their slots.
    await cancel(base, runs[1]!.runId);
    await open[1]!.lines.rest();
    const another = await openFollow(base, `/v1/runs/${runs[0]!.runId}/events?follow=true`);
    await another.lines.take(2);

    // A follow request on a finished Run is its snapshot: it never needs a slot.
    const finished = await httpRequest(base, `/v1/runs/${runs[1]!.runId}/events?follow=true`);
    expect(finished.status).toBe(200);
    expect(parseEvents(finished.body.trimEnd().split('\n')).at(-1)!.type).toBe('run_completed');
  });
});
