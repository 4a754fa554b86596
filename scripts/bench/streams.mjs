// Follow-stream fan-out: how writes to a busy Run and /v1/health behave while many follow streams
// of that Run are open. Not part of `npm run bench` (it measures latency under a fan-out, not
// throughput); run it against any build:
//
//   npm run build && node scripts/bench/streams.mjs [--server dist/server.js] [--streams 1000]
//                                                    [--writes 3000] [--concurrency 4]
//
// The service runs on core 0 (`taskset -c 0` when available), with its default settings except a
// per-Run cap above --streams. A child process on core 1 opens the follow streams and reads them;
// this process, also on core 1, sends --writes evaluations to the Run's root NodeRun
// (--concurrency at a time) and probes /v1/health every 10 ms on its own connection, first with no
// stream open, then with the streams open. At the end the Run is canceled and every stream must
// have received every event. Prints one JSON summary.
import { execFileSync, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { Histogram, JSON_HEADERS, startRunBody } from './common.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

function parseArgs(argv) {
  const options = { server: `${root}dist/server.js`, streams: 1000, writes: 3000, concurrency: 4 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = inline ?? argv[++i];
    const name = flag.replace(/^--/, '');
    if (!(name in options)) throw new Error(`unknown option ${flag}`);
    options[name] = name === 'server' ? value : Number(value);
  }
  return options;
}

const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const rssMb = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024);
};

async function startServer(options) {
  const port = await freePort();
  const command = hasTaskset ? 'taskset' : process.execPath;
  const args = [...(hasTaskset ? ['-c', '0', process.execPath] : []), options.server, '--port', String(port)];
  const child = spawn(command, args, {
    env: {
      ...process.env,
      LOG_LEVEL: 'warn',
      RC_MAX_FOLLOW_STREAMS: String(options.streams + 100),
      RC_MAX_FOLLOW_STREAMS_PER_RUN: String(options.streams + 100),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const origin = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      const pool = new Pool(origin, { connections: 1 });
      const res = await pool.request({ method: 'GET', path: '/v1/health' });
      await res.body.text();
      await pool.close();
      if (res.statusCode === 200) return { child, origin };
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error('the service did not come up');
}

/** Writes (evaluations of the root) with a bounded number in flight; their latencies. */
async function write(pool, rootId, count, concurrency) {
  const latency = new Histogram();
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      const res = await pool.request({
        method: 'POST',
        path: `/v1/node-runs/${rootId}:evaluation`,
        headers: JSON_HEADERS,
        body: JSON.stringify({ evaluation_result: { status: 'success', details: { i, note: 'bench' } } }),
      });
      await res.body.text();
      if (res.statusCode !== 204) throw new Error(`evaluation -> ${res.statusCode}`);
      latency.record(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  return { ...latency.summary(), perSecond: Math.round(count / seconds) };
}

/** Probes /v1/health every 10 ms until stopped; their latencies. */
function probeHealth(origin) {
  const pool = new Pool(origin, { connections: 1 });
  const latency = new Histogram();
  let running = true;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      const res = await pool.request({ method: 'GET', path: '/v1/health' });
      await res.body.text();
      latency.record(performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await pool.close();
  })();
  return async () => {
    running = false;
    await done;
    return latency.summary();
  };
}

async function phase(origin, pool, rootId, options) {
  const stopProbe = probeHealth(origin);
  const writes = await write(pool, rootId, options.writes, options.concurrency);
  return { writes, health: await stopProbe() };
}

/** The stream readers, in a child process: opens `count` follow streams and counts their lines. */
function streamClients() {
  const lines = [];
  process.on('message', async ({ origin, runId, count }) => {
    let ready = 0;
    let ended = 0;
    const opened = [];
    for (let i = 0; i < count; i++) {
      lines.push(0);
      opened.push(
        new Promise((resolve, reject) => {
          http
            .get(`${origin}/v1/runs/${runId}/events?follow=true`, { agent: false }, (res) => {
              if (res.statusCode !== 200) reject(new Error(`stream ${i} -> ${res.statusCode}`));
              let counted = false;
              res.on('data', (chunk) => {
                for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines[i] += 1;
                if (lines[i] >= 2 && !counted) {
                  counted = true;
                  ready += 1;
                  if (ready === count) process.send({ ready: true });
                }
              });
              res.on('end', () => {
                ended += 1;
                if (ended === count) process.send({ ended: true, lines });
              });
              resolve();
            })
            .on('error', reject);
        }),
      );
      // Opening a thousand connections at once overflows the listen backlog.
      if (i % 50 === 49) await Promise.all(opened.slice(-50));
    }
  });
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { child, origin } = await startServer(options);
  const pool = new Pool(origin, { connections: options.concurrency });
  const request = async (method, path, body) => {
    const res = await pool.request({ method, path, headers: body ? JSON_HEADERS : {}, body });
    const text = await res.body.text();
    return text ? JSON.parse(text) : undefined;
  };
  try {
    const run = await request('POST', '/v1/runs', startRunBody());
    const rssStart = rssMb(child.pid);
    const idle = await phase(origin, pool, run.root_node_run_id, options);
    const rssIdle = rssMb(child.pid);

    const clients = fork(fileURLToPath(import.meta.url), ['--clients'], {
      execArgv: [],
      ...(hasTaskset ? { execPath: 'taskset', execArgv: ['-c', '1', process.execPath] } : {}),
    });
    const message = (key) =>
      new Promise((resolve) => clients.on('message', (msg) => msg[key] && resolve(msg)));
    const ready = message('ready');
    const ended = message('ended');
    clients.send({ origin, runId: run.run_id, count: options.streams });
    await ready;
    const rssStreams = rssMb(child.pid);
    const busy = await phase(origin, pool, run.root_node_run_id, options);
    const rssBusy = rssMb(child.pid);
    await request('POST', `/v1/runs/${run.run_id}:cancel`);
    const { lines } = await ended;
    clients.kill();
    const expected = 2 + 2 * options.writes + 1;
    const complete = lines.filter((n) => n === expected).length;
    console.log(
      JSON.stringify(
        {
          server: options.server,
          streams: options.streams,
          writes: options.writes,
          concurrency: options.concurrency,
          noStreams: idle,
          withStreams: busy,
          writeP50Ratio: Math.round((busy.writes.p50 / idle.writes.p50) * 10) / 10,
          writeMeanRatio: Math.round((busy.writes.mean / idle.writes.mean) * 10) / 10,
          rssMb: {
            start: rssStart,
            afterIdleWrites: rssIdle,
            streamsOpen: rssStreams,
            afterBusyWrites: rssBusy,
          },
          streamsWithEveryEvent: `${complete}/${options.streams}`,
        },
        null,
        2,
      ),
    );
    if (complete !== options.streams) process.exitCode = 1;
  } finally {
    await pool.close();
    child.kill('SIGTERM');
  }
}

if (process.argv.includes('--clients')) streamClients();
else await main();
