/**
 * Coalesced point reads: reads that arrive while others are in flight go out together, and a read
 * never shares the answer of a query sent before it was asked (it must see every earlier commit).
 */
import { describe, expect, it } from 'vitest';
import { Coalescer } from '../../src/store/postgres/coalesce.js';
import { deferred } from '../helpers/executors.js';

/** A fetch that records each query and answers when the test says. */
function controlled() {
  const queries: { ids: string[]; answer: (values: Record<string, number>) => void }[] = [];
  const fetch = (ids: string[]) => {
    const done = deferred<Map<string, number>>();
    queries.push({ ids, answer: (values) => done.resolve(new Map(Object.entries(values))) });
    return done.promise;
  };
  return { queries, fetch };
}

describe('Coalescer', () => {
  it('sends a read at once when fewer than maxInFlight queries are out', async () => {
    const { queries, fetch } = controlled();
    const reads = new Coalescer(fetch, { maxInFlight: 2, maxBatch: 10 });
    const a = reads.get('a');
    const b = reads.get('b');
    expect(queries.map((q) => q.ids)).toEqual([['a'], ['b']]);
    queries[0]!.answer({ a: 1 });
    queries[1]!.answer({});
    expect(await a).toBe(1);
    expect(await b).toBeUndefined();
  });

  it('joins reads that wait into one query, and a read never gets the answer of a query sent before it', async () => {
    const { queries, fetch } = controlled();
    const reads = new Coalescer(fetch, { maxInFlight: 1, maxBatch: 10 });
    const first = reads.get('x');
    // Asked after the first query was sent: it must not share that query's (possibly older) answer.
    const second = reads.get('x');
    const third = reads.get('y');
    expect(queries.map((q) => q.ids)).toEqual([['x']]);
    queries[0]!.answer({ x: 1 });
    expect(await first).toBe(1);
    await Promise.resolve();
    expect(queries.map((q) => q.ids)).toEqual([['x'], ['x', 'y']]);
    queries[1]!.answer({ x: 2, y: 3 });
    expect([await second, await third]).toEqual([2, 3]);
  });

  it('splits waiting reads into queries of at most maxBatch ids', async () => {
    const { queries, fetch } = controlled();
    const reads = new Coalescer(fetch, { maxInFlight: 1, maxBatch: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((id) => reads.get(id));
    for (let i = 0; i < 3; i++) {
      await Promise.resolve();
      const query = queries[i]!;
      query.answer(Object.fromEntries(query.ids.map((id) => [id, id.charCodeAt(0)])));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    expect(queries.map((q) => q.ids)).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
    expect(await Promise.all(all)).toEqual([97, 98, 99, 100, 101]);
  });

  it('a failed query fails exactly the reads it carried', async () => {
    const reads = new Coalescer(async () => Promise.reject(new Error('down')), {
      maxInFlight: 1,
      maxBatch: 10,
    });
    await expect(reads.get('a')).rejects.toThrow('down');
  });
});
