/** The inspector's coalesced reads (ui/src/coalesce.ts): never two at once, none lost. */
import { describe, expect, it } from 'vitest';
import { coalesced } from '../../ui/src/coalesce.js';
import { type Deferred, deferred } from '../helpers/executors.js';

describe('coalesced', () => {
  it('runs once more after the run in flight, however many requests came meanwhile', async () => {
    const runs: Deferred<void>[] = [];
    let started = deferred();
    const request = coalesced(
      () => {
        const run = deferred();
        runs.push(run);
        started.resolve();
        return run.promise;
      },
      () => {},
    );
    request();
    await started.promise;
    request();
    request();
    request();
    expect(runs).toHaveLength(1);
    started = deferred();
    runs[0]!.resolve();
    await started.promise;
    expect(runs).toHaveLength(2);
    runs[1]!.resolve();
    await runs[1]!.promise;
    // Idle again: the next request starts at once.
    started = deferred();
    request();
    await started.promise;
    expect(runs).toHaveLength(3);
    runs[2]!.resolve();
  });

  it('reports a failed run and keeps serving requests', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    let done = deferred();
    const request = coalesced(
      async () => {
        calls += 1;
        done.resolve();
        if (calls === 1) throw new Error('read failed');
      },
      (error) => errors.push(error),
    );
    request();
    await done.promise;
    await Promise.resolve();
    done = deferred();
    request();
    await done.promise;
    expect(calls).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
