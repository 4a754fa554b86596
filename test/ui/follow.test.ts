/**
 * Following a Run's events (ui/src/follow.ts): streams that drop are reopened after the last seq
 * seen, events are handed on once and in order, a clean end stops once the Run is finished, and
 * fatal errors are not retried. Streams are in-memory; the wait is injected, so nothing sleeps.
 */
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src/gen/contract.js';
import { type FollowStatus, followEvents, parseNew, RETRY_DELAYS_MS } from '../../ui/src/follow.js';

const event = (seq: number): RunEvent => ({
  run_id: 'run_1',
  seq,
  type: 'node_run_assigned',
  time: '2026-01-01T00:00:00.000Z',
  node_run_id: `node_run_${seq}`,
});
const line = (seq: number) => `${JSON.stringify(event(seq))}\n`;

/** A stream that sends `text` in one chunk, then ends cleanly or fails (as a dropped connection does). */
function streamOf(text: string, end: 'close' | 'error' = 'close'): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(new TextEncoder().encode(text));
      } else if (end === 'close') controller.close();
      else controller.error(new TypeError('network error'));
    },
  });
}

describe('followEvents', () => {
  it('reopens a dropped stream after the last complete event and delivers each event once', async () => {
    const opened: number[] = [];
    const delivered: number[] = [];
    const statuses: FollowStatus[] = [];
    const waits: number[] = [];
    const streams = [
      // Drops mid-line: event 3 is cut off and must come again.
      () => streamOf(`${line(1)}${line(2)}{"run_id":"run_1","se`, 'error'),
      // Overlaps what was seen: 2 must not be delivered twice.
      () => streamOf(`${line(2)}${line(3)}`),
      () => streamOf(line(4)),
    ];
    const finished = [false, true];
    await followEvents({
      open: async (afterSeq) => {
        opened.push(afterSeq);
        return streams.shift()!();
      },
      onEvents: (events) => delivered.push(...events.map((e) => e.seq)),
      isFinished: async () => finished.shift()!,
      onStatus: (status) => statuses.push(status),
      wait: async (ms) => {
        waits.push(ms);
      },
      signal: new AbortController().signal,
    });
    expect(opened).toEqual([0, 2, 3]);
    expect(delivered).toEqual([1, 2, 3, 4]);
    expect(statuses).toEqual(['connecting', 'live', 'reconnecting', 'live', 'reconnecting', 'live', 'ended']);
    expect(waits).toEqual([RETRY_DELAYS_MS[0], RETRY_DELAYS_MS[0]]);
  });

  it('waits longer after each failure to open, and starts over once events flow', async () => {
    const waits: number[] = [];
    let attempts = 0;
    await followEvents({
      open: async () => {
        attempts += 1;
        if (attempts <= 3) throw new TypeError('connection refused');
        return streamOf(line(1));
      },
      onEvents: () => {},
      isFinished: async () => true,
      wait: async (ms) => {
        waits.push(ms);
      },
      signal: new AbortController().signal,
    });
    expect(waits).toEqual([RETRY_DELAYS_MS[0], RETRY_DELAYS_MS[1], RETRY_DELAYS_MS[2]]);
  });

  it('gives up on a fatal error (a 401 needs a new token, not a retry)', async () => {
    const unauthorized = Object.assign(new Error('Missing Authorization header'), { status: 401 });
    await expect(
      followEvents({
        open: async () => {
          throw unauthorized;
        },
        onEvents: () => {},
        isFinished: async () => false,
        isFatal: (error) => (error as { status?: number }).status === 401,
        wait: async () => {},
        signal: new AbortController().signal,
      }),
    ).rejects.toBe(unauthorized);
  });

  it('stops when aborted, without asking whether the Run finished', async () => {
    const aborter = new AbortController();
    let asked = false;
    await followEvents({
      open: async () => streamOf(line(1)),
      onEvents: () => aborter.abort(),
      isFinished: async () => {
        asked = true;
        return false;
      },
      wait: async () => {},
      signal: aborter.signal,
    });
    expect(asked).toBe(false);
  });
});

describe('parseNew', () => {
  it('skips lines that are not events, and events at or before the last seq', () => {
    const lines = [
      'not json',
      JSON.stringify(event(3)),
      JSON.stringify({ seq: 'x' }),
      JSON.stringify(event(5)),
    ];
    expect(parseNew(lines, 3).map((e) => e.seq)).toEqual([5]);
  });
});
