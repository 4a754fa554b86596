// Load generator for one scenario, started by scripts/bench.mjs (pinned to core 1 with taskset).
// It receives the scenario over IPC, does its own (unmeasured) setup over HTTP, runs a warm-up that
// is thrown away, then the measured run, and sends back one result message. It tells the parent when
// the measured window starts and ends so the parent can sample the server's CPU time.
//
// `task.urls` lists the service processes under test (several share one database): the load is
// spread over them, connection by connection; setup traffic goes to the first.
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { Pool, request } from 'undici';
import {
  CHILD_TYPE,
  COMPLETE_BODY,
  COMPLETE_ROOT_BODY,
  createBody,
  Histogram,
  JSON_HEADERS,
  parallel,
  realisticInputs,
  SetupClient,
  startRunBody,
} from './common.mjs';

const send = (message) => new Promise((resolve) => process.send(message, resolve));
const phase = (name) => send({ type: 'phase', phase: name });

/** First non-2xx response seen, for the error report. */
let failureSample;
function noteResponse(status, body) {
  if ((status < 200 || status > 299) && failureSample === undefined) {
    failureSample = { status, body: String(body).slice(0, 600) };
  }
}

// BENCH_AUTHORIZATION (the get-auth scenario) is sent on every request autocannon makes.
const authorization = process.env.BENCH_AUTHORIZATION;

function cannon(options, histogram) {
  const headers = authorization ? { ...options.headers, authorization } : options.headers;
  return new Promise((resolve, reject) => {
    const instance = autocannon({ pipelining: 1, timeout: 10, ...options, headers }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
    if (histogram) instance.on('response', (_client, _status, _bytes, ms) => histogram.record(ms));
  });
}

function cannonStats(result) {
  return {
    requests: result.requests.total,
    elapsedSeconds: result.duration,
    rps: result.requests.total / result.duration,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
    autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  };
}

/**
 * Responses per second of the measured run, and the slowest of each second (by when it ended), so
 * that pauses show: a second in which the service stalled answers few requests, slowly.
 */
class Timeline {
  constructor() {
    this.t0 = performance.now();
    this.counts = [];
    this.maxMs = [];
  }

  record(ms) {
    const second = Math.floor((performance.now() - this.t0) / 1000);
    this.counts[second] = (this.counts[second] ?? 0) + 1;
    this.maxMs[second] = Math.max(this.maxMs[second] ?? 0, ms);
  }

  /** Whole seconds only: the last, partial one (autocannon's wind-down) is left out. */
  summary(seconds) {
    const whole = Math.floor(seconds);
    const counts = Array.from({ length: whole }, (_, i) => this.counts[i] ?? 0);
    const maxMs = Array.from({ length: whole }, (_, i) => Math.round((this.maxMs[i] ?? 0) * 10) / 10);
    const sorted = [...counts].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
    const min = sorted[0] ?? 0;
    return {
      perSecond: counts,
      maxLatencyMsPerSecond: maxMs,
      medianPerSecond: median,
      minPerSecond: min,
      slowestSecond: counts.indexOf(min),
      minOverMedian: median > 0 ? min / median : 0,
    };
  }
}

/** Warm-up (discarded) then the measured autocannon run with the same request factory. */
async function measureCannon(task, requests, afterWarmup) {
  // autocannon gives connection i to urls[i % urls.length].
  const base = { url: task.urls, connections: task.connections };
  const warm = await cannon({ ...base, duration: task.warmup, requests: requests() });
  const warmStats = cannonStats(warm);
  if (afterWarmup) await afterWarmup(warmStats);
  const histogram = new Histogram();
  await phase('measure-start');
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const timeline = task.timeline ? new Timeline() : undefined;
  const recorder = timeline
    ? {
        record: (ms) => {
          histogram.record(ms);
          timeline.record(ms);
        },
      }
    : histogram;
  const result = await cannon({ ...base, duration: task.duration, requests: requests() }, recorder);
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  await phase('measure-end');
  return {
    ...cannonStats(result),
    latencyMs: histogram.summary(),
    ...(timeline ? { timeline: timeline.summary(task.duration) } : {}),
    clientCpuPercent: ((used.user + used.system) / 1000 / wallMs) * 100,
    warmup: { requests: warmStats.requests, rps: warmStats.rps, non2xx: warmStats.non2xx + warmStats.errors },
  };
}

async function getScenario(task) {
  return measureCannon(task, () => [{ method: 'GET', path: task.path, onResponse: noteResponse }]);
}

/** An autocannon request factory: POSTs to `path`, the bodies in turn. */
function rotatingPosts(path, bodies) {
  let next = 0;
  return () => [
    {
      method: 'POST',
      path,
      headers: JSON_HEADERS,
      setupRequest: (request) => {
        request.body = bodies[next++ % bodies.length];
        return request;
      },
      onResponse: noteResponse,
    },
  ];
}

/**
 * POST /v1/node-runs with `specs` specs per request, round-robin over many Runs (root = parent). For
 * a ceiling (`task.ceiling`), the same bodies naming Runs that need not exist.
 */
async function createScenario(task) {
  let runs;
  if (task.ceiling) {
    runs = Array.from({ length: task.parents }, (_, i) => ({
      run_id: `run_ceiling_${i}`,
      root_node_run_id: `node_run_ceiling_${i}`,
    }));
  } else {
    const client = new SetupClient(task.url, 8);
    runs = await parallel(task.parents, 8, (i) => client.startRun({ parent: i }));
    await client.close();
  }
  const bodies = runs.map((run, i) =>
    Buffer.from(createBody(run.run_id, run.root_node_run_id, task.specs, realisticInputs, i * task.specs)),
  );
  const result = await measureCannon(task, rotatingPosts('/v1/node-runs', bodies));
  const created = (result.statusCodes['200'] ?? 0) * task.specs;
  return {
    ...result,
    setup: { parents: task.parents, specsPerRequest: task.specs },
    nodeRunsPerSecond: result.rps * task.specs,
    nodeRunsCreatedMeasured: created,
  };
}

/**
 * `count` fresh queued NodeRuns, 1,000 per Run under its composite root, in round-robin order over
 * the Runs: consecutive requests complete NodeRuns of different Runs, as the create scenarios spread
 * over their parents. (In Run order, the 50 requests in flight would all wait for one Run, whose
 * decisions a durable store commits one after the other.)
 */
async function queuedPool(url, count, label) {
  const client = new SetupClient(url, 4);
  const perRun = 1000;
  const t0 = performance.now();
  const batches = await parallel(Math.ceil(count / perRun), 4, async (b) => {
    const run = await client.startRun({ pool: label, batch: b });
    const size = Math.min(perRun, count - b * perRun);
    const nodeRuns = await client.createNodeRuns(run, size, (i) => ({ n: i }), b * perRun);
    return nodeRuns.map((nodeRun) => nodeRun.node_run_id);
  });
  await client.close();
  const ids = [];
  for (let i = 0; i < perRun; i++) for (const batch of batches) if (i < batch.length) ids.push(batch[i]);
  return { ids, seconds: (performance.now() - t0) / 1000 };
}

/** POST /v1/runs, each with its own (realistic) input: every request starts a new Run. */
async function startScenario(task) {
  const bodies = Array.from({ length: 1000 }, (_, i) => Buffer.from(startRunBody(realisticInputs(i))));
  return measureCannon(task, rotatingPosts('/v1/runs', bodies));
}

/** An autocannon request factory: completions, of the NodeRun `nextId()` names each time. */
function completions(nextId) {
  return () => [
    {
      method: 'POST',
      path: '/',
      headers: JSON_HEADERS,
      body: COMPLETE_BODY,
      setupRequest: (request) => {
        request.path = `/v1/node-runs/${nextId()}:complete`;
        return request;
      },
      onResponse: noteResponse,
    },
  ];
}

/** The ceiling of the complete scenario: the same requests, on NodeRun ids that need not exist. */
async function completeCeilingScenario(task) {
  let next = 0;
  return measureCannon(
    task,
    completions(() => `node_run_${(next++).toString(16).padStart(32, '0')}`),
  );
}

/** POST /v1/node-runs/{id}:complete, each request on a different queued NodeRun. */
async function completeScenario(task) {
  if (task.ceiling) return completeCeilingScenario(task);
  const warmPool = await queuedPool(task.url, Math.ceil(task.completeRateGuess * task.warmup), 'warmup');
  let pool = warmPool.ids;
  let cursor = 0;
  let repeats = 0;
  const requests = completions(() => {
    if (cursor >= pool.length) repeats += 1;
    return pool[cursor++ % pool.length];
  });
  let measuredPool;
  const result = await measureCannon(task, requests, async (warm) => {
    // Size the measured pool from the warm-up rate, with room for autocannon's extra second.
    const size = Math.ceil(warm.rps * (task.duration + 1) * 1.5) + 5000;
    measuredPool = await queuedPool(task.url, size, 'measured');
    pool = measuredPool.ids;
    cursor = 0;
    repeats = 0;
  });
  return {
    ...result,
    setup: {
      warmupPool: warmPool.ids.length,
      measuredPool: pool.length,
      poolCreateSeconds: Math.round(measuredPool.seconds * 10) / 10,
      completionsIssued: Math.min(cursor, pool.length),
    },
    /** Requests that would have hit an already completed NodeRun (the cheaper no-op path). */
    repeatedCompletions: repeats,
  };
}

/** start -> create one child -> complete child -> complete root, `connections` loops in parallel. */
async function cycleScenario(task) {
  const pools = task.urls.map((url) => new Pool(url, { connections: task.connections, pipelining: 1 }));
  const counts = { cycles: 0, requests: 0, non2xx: 0, errors: 0, statusCodes: {} };
  const call = async (pool, method, path, body, expect) => {
    const res = await pool.request({ method, path, headers: JSON_HEADERS, body });
    counts.requests += 1;
    counts.statusCodes[res.statusCode] = (counts.statusCodes[res.statusCode] ?? 0) + 1;
    if (res.statusCode !== expect) {
      counts.non2xx += 1;
      noteResponse(res.statusCode, await res.body.text());
      throw new Error(`${method} ${path} -> ${res.statusCode}`);
    }
    return expect === 204 ? res.body.dump() : res.body.json();
  };
  const startBody = startRunBody({ question: 'What changed this quarter?' });
  let seq = 0;
  /** One cycle, every request of it on `pool` (a loop stays with one service process). */
  const cycle = async (pool) => {
    const run = await call(pool, 'POST', '/v1/runs', startBody, 200);
    const i = seq++;
    const childBody = JSON.stringify({
      run_id: run.run_id,
      parent_node_run_id: run.root_node_run_id,
      node_runs: [{ node_type_ref: CHILD_TYPE, inputs: realisticInputs(i) }],
    });
    const { node_runs: children } = await call(pool, 'POST', '/v1/node-runs', childBody, 200);
    await call(pool, 'POST', `/v1/node-runs/${children[0].node_run_id}:complete`, COMPLETE_BODY, 204);
    await call(pool, 'POST', `/v1/node-runs/${run.root_node_run_id}:complete`, COMPLETE_ROOT_BODY, 204);
  };
  const loop = async (seconds, histogram) => {
    const deadline = performance.now() + seconds * 1000;
    let completed = 0;
    const lane = async (_, laneIndex) => {
      const pool = pools[laneIndex % pools.length];
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await cycle(pool);
        } catch (error) {
          if (!String(error.message).includes(' -> ')) counts.errors += 1;
          if (counts.errors + counts.non2xx > 1000) throw error;
          continue;
        }
        const t1 = performance.now();
        if (t1 <= deadline) {
          completed += 1;
          histogram?.record(t1 - t0);
        }
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: task.connections }, lane));
    return { completed, elapsedSeconds: Math.min(seconds, (performance.now() - t0) / 1000) };
  };

  const warm = await loop(task.warmup);
  const warmNon2xx = counts.non2xx + counts.errors;
  Object.assign(counts, { requests: 0, non2xx: 0, errors: 0, statusCodes: {} });
  const histogram = new Histogram();
  await phase('measure-start');
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const measured = await loop(task.duration, histogram);
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  await phase('measure-end');
  await Promise.all(pools.map((pool) => pool.close()));
  const cyclesPerSecond = measured.completed / task.duration;
  return {
    // HTTP requests/s of completed cycles (4 per cycle), comparable with the other rows.
    rps: cyclesPerSecond * 4,
    requests: counts.requests,
    elapsedSeconds: task.duration,
    cycles: measured.completed,
    cyclesPerSecond,
    non2xx: counts.non2xx,
    errors: counts.errors,
    timeouts: 0,
    statusCodes: counts.statusCodes,
    latencyMs: histogram.summary(),
    clientCpuPercent: ((used.user + used.system) / 1000 / wallMs) * 100,
    warmup: { cycles: warm.completed, rps: (warm.completed * 4) / task.warmup, non2xx: warmNon2xx },
  };
}

/** The events of an atomic-root Run that ran on the Atomic Executor, sorted by type. */
const LIFECYCLE_EVENTS = [
  'atomic_executed',
  'node_evaluated',
  'node_run_assigned',
  'policy_decided',
  'policy_decided',
  'run_completed',
  'run_started',
].join(',');

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Full NodeRun lifecycle with a (trivial) Atomic Executor: `connections` loops, each one
 * `POST /v1/runs` with an `atomic.x` root, then `GET /v1/runs/{id}/events?follow=true` until the
 * stream ends (the Run is terminal), then the next Run. Per Run (= per NodeRun): the client-observed
 * time from sending start_run to the end of the stream, minus the AE's own handling time.
 */
async function lifecycleScenario(task) {
  // headers/body timeouts bound every request, including a follow stream whose Run never ends.
  const pools = task.urls.map(
    (url) =>
      new Pool(url, {
        connections: task.connections,
        pipelining: 1,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      }),
  );
  const ae = async (method, path) => {
    const res = await request(`${task.aeUrl}${path}`, { method });
    if (res.statusCode >= 300) throw new Error(`AE ${method} ${path} -> ${res.statusCode}`);
    return res.statusCode === 204 ? res.body.dump() : res.body.json();
  };
  const counts = {
    runs: 0,
    requests: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    badRuns: 0,
    statusCodes: {},
  };
  let badRunSample;
  const call = async (pool, method, path, body) => {
    const res = await pool.request({ method, path, headers: body ? JSON_HEADERS : {}, body });
    counts.requests += 1;
    counts.statusCodes[res.statusCode] = (counts.statusCodes[res.statusCode] ?? 0) + 1;
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      counts.non2xx += 1;
      noteResponse(res.statusCode, text);
      throw new Error(`${method} ${path} -> ${res.statusCode}`);
    }
    return text;
  };
  let seq = 0;
  /**
   * One Run, started on `starter` and followed on `follower` (the same service process or another
   * one); returns its timings, or undefined when the Run did not end as expected.
   */
  const lifecycle = async (starter, follower) => {
    const body = JSON.stringify({ root_node_type_ref: CHILD_TYPE, input: realisticInputs(seq++) });
    const t0 = performance.now();
    const run = JSON.parse(await call(starter, 'POST', '/v1/runs', body));
    const tStarted = performance.now();
    const stream = await call(follower, 'GET', `/v1/runs/${run.run_id}/events?follow=true`);
    const t1 = performance.now();
    const events = stream
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
    const last = events[events.length - 1];
    const types = events
      .map((e) => e.type)
      .sort()
      .join(',');
    if (types !== LIFECYCLE_EVENTS || last?.type !== 'run_completed' || last.data?.state !== 'succeeded') {
      counts.badRuns += 1;
      badRunSample ??= { run_id: run.run_id, events: events.map((e) => [e.type, e.data]) };
      return undefined;
    }
    return {
      nodeRunId: run.root_node_run_id,
      totalMs: t1 - t0,
      startRunMs: tStarted - t0,
      // The service's own event times (ms resolution): run_started -> run_completed.
      serverSpanMs: Date.parse(last.time) - Date.parse(events[0].time),
    };
  };
  const loop = async (seconds, samples) => {
    const deadline = performance.now() + seconds * 1000;
    let completed = 0;
    // With several service processes, loop i starts its Runs on process i mod n, and follows every
    // other Run there and the others on the next process: like a load balancer that spreads requests,
    // half of the streams learn of the Run's end from another process (LISTEN/NOTIFY).
    const lane = async (_, laneIndex) => {
      let runs = 0;
      while (performance.now() < deadline) {
        counts.runs += 1;
        const starter = laneIndex % pools.length;
        const follower = (laneIndex + runs++) % pools.length;
        let sample;
        try {
          sample = await lifecycle(pools[starter], pools[follower]);
        } catch (error) {
          if (TIMEOUT_CODES.has(error?.code)) counts.timeouts += 1;
          else if (!String(error?.message).includes(' -> ')) counts.errors += 1;
          if (counts.errors + counts.timeouts + counts.non2xx > 1000) throw error;
          continue;
        }
        if (sample && performance.now() <= deadline) {
          completed += 1;
          samples?.push(sample);
        }
      }
    };
    await Promise.all(Array.from({ length: task.connections }, lane));
    return { completed };
  };

  const warm = await loop(task.warmup);
  const warmFailed = counts.non2xx + counts.errors + counts.timeouts;
  const warmBadRuns = counts.badRuns;
  Object.assign(counts, {
    runs: 0,
    requests: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    badRuns: 0,
    statusCodes: {},
  });
  // Every warm-up Run has ended (each loop waits for its Run), so nothing is in flight at the AE.
  await ae('POST', '/_bench/reset');
  const samples = [];
  await phase('measure-start');
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const measured = await loop(task.duration, samples);
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  await phase('measure-end');
  await Promise.all(pools.map((pool) => pool.close()));

  const aeReport = await ae('GET', '/_bench/timings');
  const added = new Histogram();
  const total = new Histogram();
  const aeTime = new Histogram();
  const startRun = new Histogram();
  const serverSpan = new Histogram();
  let missingAeTimings = 0;
  for (const s of samples) {
    const aeMs = aeReport.timingsMs[s.nodeRunId];
    if (aeMs === undefined) {
      missingAeTimings += 1;
      continue;
    }
    added.record(Math.max(0, s.totalMs - aeMs));
    total.record(s.totalMs);
    aeTime.record(aeMs);
    startRun.record(s.startRunMs);
    serverSpan.record(s.serverSpanMs);
  }
  const nodeRunsPerSecond = measured.completed / task.duration;
  return {
    // HTTP requests/s the client made (start_run + follow stream per Run), comparable with the other rows.
    rps: nodeRunsPerSecond * 2,
    requests: counts.requests,
    elapsedSeconds: task.duration,
    nodeRunsCompleted: measured.completed,
    completedNodeRunsPerSecond: nodeRunsPerSecond,
    runsAttempted: counts.runs,
    non2xx: counts.non2xx,
    errors: counts.errors,
    timeouts: counts.timeouts,
    badRuns: counts.badRuns,
    badRunSample,
    missingAeTimings,
    statusCodes: counts.statusCodes,
    /** Coordinator-added latency per NodeRun: client-observed start -> terminal minus AE handling. */
    latencyMs: added.summary(),
    totalLatencyMs: total.summary(),
    aeHandlingMs: aeTime.summary(),
    startRunResponseMs: startRun.summary(),
    serverEventSpanMs: serverSpan.summary(),
    atomicExecutor: {
      executes: aeReport.executes,
      badRequests: aeReport.badRequests,
      unexpected: aeReport.unexpected,
      duplicates: aeReport.duplicates,
      executesBy: aeReport.executesBy,
    },
    clientCpuPercent: ((used.user + used.system) / 1000 / wallMs) * 100,
    warmup: {
      runs: warm.completed,
      rps: (warm.completed * 2) / task.warmup,
      non2xx: warmFailed,
      badRuns: warmBadRuns,
    },
  };
}

const scenarios = {
  get: getScenario,
  create: createScenario,
  start: startScenario,
  complete: completeScenario,
  cycle: cycleScenario,
  lifecycle: lifecycleScenario,
};

process.once('message', async (task) => {
  try {
    const result = await scenarios[task.kind](task);
    await send({ type: 'result', result: { ...result, failureSample } });
    process.exit(0);
  } catch (error) {
    await send({ type: 'error', error: error?.stack ?? String(error), failureSample });
    process.exit(1);
  }
});
