// `npm run bench`: throughput and latency of the real service against a bare-Fastify ceiling, plus
// memory held per NodeRun. See BENCHMARKS.md for the method and how to read the output.
//
//   npm run bench -- [--connections 50] [--duration 10] [--warmup 3] [--pair-rounds 3]
//                    [--scenarios ceiling,get,get-auth,get-metrics-off,events,start,create1,create10,complete,
//                                 cycle,lifecycle,create-long]
//                    [--parents 1000] [--long-duration 60] [--memory-nodes 100000] [--skip-memory]
//                    [--store memory|postgres] [--instances 1,2] [--pg-cpus 0|none] [--pg-set k=v]
//
// The service runs on core 0 (`taskset -c 0`), the load generator on core 1 (`taskset -c 1`); every
// scenario gets a fresh service process with the default configuration (the lifecycle scenario adds
// RC_ATOMIC_EXECUTOR_URL, pointing at a trivial Atomic Executor on core 1; get-auth adds
// ARP_AUTH_MODE=required against a loopback JWKS on core 1). Results are printed and written to
// bench-results/latest.json (plus a dated copy). Exit code 1 when any request failed.
//
// With `ceiling` among the scenarios, GET and each of events, start, create1, create10 and complete is
// measured in alternating rounds with a bare-Fastify ceiling of its own (scripts/bench/ceiling-server.mjs:
// the same answer bytes, and for POSTs the same body parser and Ajv validation of the same contract
// schema). create-long is a long create1 run with its throughput and slowest answer per second.
//
// `--store postgres` measures the durable store instead: a throwaway PostgreSQL server for the run
// (scripts/bench/postgres.mjs), a fresh schema per scenario, each scenario with one service process
// and with two on the same schema, and the memory store's GET in the same rounds as a reference.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { COMPLETE_BODY, createBody, JSON_HEADERS, realisticInputs, startRunBody } from './bench/common.mjs';
import { startBenchPostgres } from './bench/postgres.mjs';
import { cpuSeconds, rssOf } from './bench/procfs.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const resultsDir = join(root, 'bench-results');
const logsDir = join(resultsDir, 'logs');

// ---------------------------------------------------------------------------------------------
// Options

const ALL_SCENARIOS = [
  'ceiling',
  'get',
  'get-auth',
  'get-metrics-off',
  'events',
  'start',
  'create1',
  'create10',
  'complete',
  'cycle',
  'lifecycle',
  'create-long',
];
/** Scenarios measured against a ceiling of their own when `ceiling` is among the scenarios. */
const CEILINGED = ['events', 'start', 'create1', 'create10', 'complete'];
/** What `--store postgres` can measure, and what it measures by default. */
const DURABLE_SCENARIOS = ['get', 'events', 'start', 'create1', 'create10', 'complete', 'cycle', 'lifecycle'];
const DURABLE_DEFAULT = ['get', 'create1', 'create10', 'complete', 'lifecycle'];
/**
 * Where PostgreSQL runs unless --pg-cpus says otherwise: on the load generator's core, so that the
 * service keeps core 0 to itself as in the memory store's rows (see BENCHMARKS.md).
 */
const DEFAULT_PG_CPUS = '1';
const USAGE = `usage: npm run bench -- [options]
  --connections N     concurrent connections (default 50)
  --duration S        measured seconds per scenario (default 10)
  --warmup S          unmeasured warm-up seconds per scenario (default 3)
  --pair-rounds N     alternating rounds of get-auth, GET, get-metrics-off and the ceiling, and of each
                      scenario with a ceiling of its own and that ceiling; the median-ratio round is
                      reported (default 3)
  --scenarios LIST    comma-separated subset of ${ALL_SCENARIOS.join(',')} (default: all)
  --parents N         composite parents the create scenarios spread over (default 1000)
  --long-duration S   measured seconds of create-long (default 60)
  --memory-nodes N    NodeRuns held for the memory probe (default 100000)
  --skip-memory       do not run the memory probe
  --store S           memory (default) or postgres: a throwaway PostgreSQL 15 server for the run, a
                      fresh schema per scenario; scenarios ${DURABLE_SCENARIOS.join(',')}
                      (default ${DURABLE_DEFAULT.join(',')}); get is paired with the memory store's
                      GET; no memory probe
  --instances LIST    postgres: service processes sharing each scenario's schema, each count measured
                      (default 1,2)
  --pg-cpus LIST|none postgres: taskset CPU list for PostgreSQL, or none for unpinned (default ${DEFAULT_PG_CPUS},
                      the load generator's core; 0 = the service's)
  --pg-set NAME=VALUE postgres: an extra server setting (repeatable), e.g. synchronous_commit=off
  --service-env NAME=VALUE
                      an extra environment variable for every service process (repeatable; the
                      measured configuration is then not the default, and the JSON says so)
  --node-arg OPTION   an extra node option for every service process (repeatable, e.g.
                      --node-arg=--trace-gc; its output goes to the service's log)
  --cpu-prof          every service process writes a V8 CPU profile (set-up, warm-up and measured
                      window) to bench-results/profiles/<scenario>.cpuprofile`;

function parseArgs(argv) {
  const options = {
    connections: 50,
    duration: 10,
    warmup: 3,
    pairRounds: 3,
    parents: 1000,
    longDuration: 60,
    memoryNodes: 100_000,
    skipMemory: false,
    store: 'memory',
    instances: [1, 2],
    pgCpus: DEFAULT_PG_CPUS,
    pgSettings: {},
    serviceEnv: {},
    nodeArgs: [],
  };
  let scenarios;
  let instancesGiven = false;
  const number = (name, text, min) => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number >= ${min}`);
    return value;
  };
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].indexOf('=');
    const [flag, inline] = eq < 0 ? [argv[i], undefined] : [argv[i].slice(0, eq), argv[i].slice(eq + 1)];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--connections':
        options.connections = Math.round(number('connections', value(), 1));
        break;
      case '--duration':
        options.duration = number('duration', value(), 1);
        break;
      case '--warmup':
        options.warmup = number('warmup', value(), 0.5);
        break;
      case '--parents':
        options.parents = Math.round(number('parents', value(), 1));
        break;
      case '--long-duration':
        options.longDuration = number('long-duration', value(), 5);
        break;
      case '--memory-nodes':
        options.memoryNodes = Math.round(number('memory-nodes', value(), 1000));
        break;
      case '--skip-memory':
        options.skipMemory = true;
        break;
      case '--cpu-prof':
        options.cpuProf = true;
        break;
      case '--service-env': {
        const [name, ...rest] = value().split('=');
        if (!/^[A-Z_][A-Z0-9_]*$/.test(name) || rest.length === 0) {
          throw new Error('--service-env needs NAME=VALUE');
        }
        options.serviceEnv[name] = rest.join('=');
        break;
      }
      case '--node-arg': {
        const arg = value();
        if (!arg?.startsWith('--'))
          throw new Error('--node-arg needs a node option, e.g. --node-arg=--trace-gc');
        options.nodeArgs.push(arg);
        break;
      }
      case '--pair-rounds':
        options.pairRounds = number('pair-rounds', value(), 1);
        break;
      case '--scenarios': {
        const list = value()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const unknown = list.filter((s) => !ALL_SCENARIOS.includes(s));
        if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')}`);
        scenarios = ALL_SCENARIOS.filter((s) => list.includes(s));
        break;
      }
      case '--store': {
        const store = value();
        if (store !== 'memory' && store !== 'postgres') throw new Error('--store must be memory or postgres');
        options.store = store;
        break;
      }
      case '--instances': {
        const counts = value()
          .split(',')
          .map((s) => Math.round(number('instances', s, 1)));
        options.instances = [...new Set(counts)].sort((a, b) => a - b);
        instancesGiven = true;
        break;
      }
      case '--pg-cpus': {
        const cpus = value();
        if (!/^(none|[0-9][0-9,-]*)$/.test(cpus)) throw new Error('--pg-cpus must be a CPU list or none');
        options.pgCpus = cpus === 'none' ? undefined : cpus;
        break;
      }
      case '--pg-set': {
        const [name, ...rest] = value().split('=');
        if (!/^[a-z_][a-z0-9_.]*$/.test(name) || rest.length === 0)
          throw new Error('--pg-set needs name=value');
        options.pgSettings[name] = rest.join('=');
        break;
      }
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}\n${USAGE}`);
    }
  }
  if (options.store === 'postgres') {
    const unfit = (scenarios ?? []).filter((s) => !DURABLE_SCENARIOS.includes(s));
    if (unfit.length > 0) {
      throw new Error(`--store postgres measures ${DURABLE_SCENARIOS.join(', ')}; not ${unfit.join(', ')}`);
    }
    options.scenarios = scenarios ?? DURABLE_DEFAULT;
    options.skipMemory = true;
  } else {
    // Memory stores of separate processes share nothing, so only one process can serve a scenario.
    if (instancesGiven) throw new Error('--instances needs --store postgres');
    options.instances = [1];
    options.scenarios = scenarios ?? ALL_SCENARIOS;
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on exit, error, or Ctrl-C.

const children = new Set();

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function killAll(signal) {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping every child process`);
    killAll('SIGKILL');
    process.exit(130);
  });
}

function exited(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, 5000))) {
    child.kill('SIGKILL');
    await exited(child, 5000);
  }
}

// ---------------------------------------------------------------------------------------------
// Machine facts and pinning

function detectPinning() {
  if (os.availableParallelism() < 2) {
    console.warn(
      'WARNING: fewer than 2 CPUs available; running unpinned (numbers will mostly measure contention).',
    );
    return false;
  }
  const probe = spawnSync('taskset', ['-c', '1', 'true'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    console.warn(
      'WARNING: taskset is missing or cannot pin to CPU 1; running UNPINNED (server and load share cores).',
    );
    return false;
  }
  return true;
}

let pinning = false;
/** The command line for `cmd args` pinned to `cpu` (or unpinned when taskset is unavailable). */
function pinned(cpu, cmd, args) {
  return pinning ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

function machineFacts() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const version = (name) => {
    try {
      return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return undefined;
    }
  };
  const git = (...args) => {
    try {
      return execFileSync('git', args, {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' },
      }).trim();
    } catch {
      return undefined;
    }
  };
  const changes = git('status', '--porcelain', '--untracked-files=no');
  return {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    versions: {
      fastify: version('fastify'),
      autocannon: version('autocannon'),
      undici: version('undici'),
      service: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version,
    },
    git: {
      commit: git('rev-parse', 'HEAD'),
      trackedChanges: changes === undefined ? undefined : changes !== '',
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Servers

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

/** --service-env: set on every service process, after everything else. */
let serviceOverrides = {};

/**
 * Environment for the service: ours minus LOG_LEVEL, RC_*, ARP_AUTH_* and the ARP_*_URL fallbacks for
 * the service URLs, so it runs with its defaults (auth off), plus `extra` and --service-env.
 */
function serviceEnv(extra = {}) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (
      key === 'LOG_LEVEL' ||
      key.startsWith('RC_') ||
      key.startsWith('ARP_AUTH_') ||
      /^ARP_.*_URL$/.test(key)
    )
      delete env[key];
  }
  return { ...env, ...extra, ...serviceOverrides };
}

async function waitReady(url, child, label, logPath) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${label} exited during startup (code ${child.exitCode}); see ${logPath}`);
    }
    try {
      const res = await request(`${url}/v1/health`);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${label} did not become ready within 20 s; see ${logPath}`);
}

async function startServer(
  label,
  script,
  extraArgs = [],
  { cpu = 0, env = serviceEnv(), nodeArgs = [] } = {},
) {
  const port = await freePort();
  const logPath = join(logsDir, `${label}.log`);
  const fd = openSync(logPath, 'w');
  const [cmd, args] = pinned(cpu, process.execPath, [
    ...nodeArgs,
    script,
    '--port',
    String(port),
    ...extraArgs,
  ]);
  const child = track(spawn(cmd, args, { cwd: root, env, stdio: ['ignore', fd, fd] }));
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child, label, logPath);
  return { label, url, child, logPath };
}

/** Set by --cpu-prof: every service process writes a V8 CPU profile there when it exits. */
let profileDir;
/** --node-arg: node options of every service process. */
let serviceNodeArgs = [];

const startService = (label, env = {}) =>
  startServer(label, 'dist/server.js', [], {
    env: serviceEnv(env),
    nodeArgs: [
      ...serviceNodeArgs,
      ...(profileDir
        ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${label}.cpuprofile`]
        : []),
    ],
  });

/** The memory store: every service process has its own, so there is nothing to set up or clear. */
const MEMORY_STORE = {
  kind: 'memory',
  freshSchema: () => undefined,
  serviceEnv: () => ({}),
  cpuSeconds: undefined,
  clear: async () => {},
};

/** The store the services of this run use (MEMORY_STORE, or the throwaway PostgreSQL server). */
let benchStore = MEMORY_STORE;

/** Service processes measured together; a single server is a group of one. */
const asGroup = (server) => (server.members ? server : { ...server, urls: [server.url], members: [server] });

/**
 * `instances` service processes on one fresh store (for PostgreSQL: a new schema they share), each
 * with `env(i)` on top; `use(group)`'s result, after which the processes stop and the store is cleared.
 */
async function withServices(label, { instances = 1, env = () => ({}), store = benchStore }, use) {
  const schema = store.freshSchema(label);
  const start = async () => {
    const started = await Promise.allSettled(
      Array.from({ length: instances }, (_, i) =>
        startService(instances > 1 ? `${label}-${i + 1}` : label, { ...store.serviceEnv(schema), ...env(i) }),
      ),
    );
    const members = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) {
      await Promise.all(members.map((m) => stopProcess(m.child)));
      throw failed.reason;
    }
    return { label, url: members[0].url, urls: members.map((m) => m.url), members, store };
  };
  try {
    return await withServer(start, use);
  } finally {
    await store.clear(schema);
  }
}

/** The trivial Atomic Executor of the lifecycle scenario, on core 1 next to the load generator. */
const startAtomicExecutor = (label) =>
  startServer(label, 'scripts/bench/trivial-ae.mjs', [], { cpu: 1, env: serviceEnv() });

/**
 * The loopback token issuer of the get-auth scenario (scripts/conformance/issuer.mjs: a fresh RS256
 * key, its JWKS, one token for audience arp-run-coordinator), on core 1 next to the load generator.
 * It is idle while measuring: the service fetches the JWKS at startup and verifies the token once.
 */
async function startIssuer(label, ttlSeconds) {
  const logPath = join(logsDir, `${label}.log`);
  const fd = openSync(logPath, 'w');
  const [cmd, args] = pinned(1, process.execPath, [
    'scripts/conformance/issuer.mjs',
    'serve',
    '--audience',
    'arp-run-coordinator',
    '--subject',
    'bench',
    '--ttl',
    String(ttlSeconds),
  ]);
  const child = track(spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', fd] }));
  closeSync(fd);
  try {
    const line = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(
        () => reject(new Error(`${label} did not start within 20 s; see ${logPath}`)),
        20_000,
      );
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(out.slice(0, out.indexOf('\n')));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${label} exited during startup (code ${code}); see ${logPath}`));
      });
    });
    child.stdout.resume();
    return { label, child, logPath, ...JSON.parse(line) };
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
}

/** pino lines at level error (50) or above in a service log. */
function errorLogLines(logPath) {
  try {
    return readFileSync(logPath, 'utf8')
      .split('\n')
      .filter((line) => /"level":(5\d|60)/.test(line));
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Load generator

/**
 * Runs one scenario in scripts/bench/load.mjs on core 1 against `server` (a service group: the load
 * goes to all its processes) and samples the CPU of the server side meanwhile: the service
 * processes, and the database's processes when the group's store has any. Also that of `peer`, a
 * helper process on core 1 such as the trivial Atomic Executor. With `authorization`, every request
 * of the load generator carries that Authorization header.
 */
function runLoad(server, task, peer, { authorization } = {}) {
  const [cmd, args] = pinned(1, process.execPath, ['scripts/bench/load.mjs']);
  const env = authorization ? { ...process.env, BENCH_AUTHORIZATION: authorization } : process.env;
  const child = track(spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const pids = server.members.map((member) => member.child.pid);
  const serviceCpu = () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const dbCpu = server.store?.cpuSeconds;
  const budgetMs = (task.warmup + task.duration) * 1000 + 180_000;
  return new Promise((resolve, reject) => {
    let cpu0;
    let dbCpu0;
    let peerCpu0;
    let t0;
    let serverCpuPercent = Number.NaN;
    let dbCpuPercent;
    let peerCpuPercent;
    let settled = false;
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        stopProcess(child);
        reject(error);
      } else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new Error(`load generator for '${task.name}' did not finish within ${budgetMs / 1000} s`)),
      budgetMs,
    );
    child.on('message', (message) => {
      if (message.type === 'phase' && message.phase === 'measure-start') {
        cpu0 = serviceCpu();
        if (dbCpu) dbCpu0 = dbCpu();
        if (peer) peerCpu0 = cpuSeconds(peer.child.pid);
        t0 = performance.now();
      } else if (message.type === 'phase' && message.phase === 'measure-end') {
        const seconds = (performance.now() - t0) / 1000;
        serverCpuPercent = ((serviceCpu() - cpu0) / seconds) * 100;
        if (dbCpu) dbCpuPercent = ((dbCpu() - dbCpu0) / seconds) * 100;
        if (peer) peerCpuPercent = ((cpuSeconds(peer.child.pid) - peerCpu0) / seconds) * 100;
      } else if (message.type === 'result') {
        const result = message.result;
        // Core 1 runs the load generator and, when there is one, the peer.
        const core1 = result.clientCpuPercent + (peerCpuPercent ?? 0);
        const serverSide = serverCpuPercent + (dbCpuPercent ?? 0);
        const memories = pids.map(rssOf);
        finish(undefined, {
          ...result,
          instances: pids.length,
          serverCpuPercent,
          ...(dbCpu ? { dbCpuPercent, serverSideCpuPercent: serverSide } : {}),
          serverMemory: {
            rss: memories.reduce((sum, m) => sum + m.rss, 0),
            peak: Math.max(...memories.map((m) => m.peak)),
          },
          ...(peer ? { peerCpuPercent } : {}),
          clientBound: core1 > 90,
          // Every connection always has a request in flight, so a server side below 85% of a core
          // while the load generator is not saturated means something else had the CPU (or, with a
          // database, that the server side waited for the disk).
          contended: task.connections >= 10 && serverSide < 85 && core1 <= 90,
        });
      } else if (message.type === 'error') {
        const sample = message.failureSample
          ? `\nfirst failing response: ${JSON.stringify(message.failureSample)}`
          : '';
        finish(new Error(`load generator failed in '${task.name}':\n${message.error}${sample}`));
      }
    });
    child.once('exit', (code, signal) =>
      finish(new Error(`load generator for '${task.name}' exited (${signal ?? code}) without a result`)),
    );
    child.send({ ...task, url: server.url, urls: server.urls });
  });
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const LABELS = {
  ceiling: 'ceiling: bare Fastify, same bytes',
  'get-memory': 'GET /v1/node-runs/{id}, memory store',
  get: 'GET /v1/node-runs/{id}',
  events: 'GET /v1/runs/{id}/events (snapshot, 9 events)',
  'ceiling-events': 'ceiling: bare Fastify, same NDJSON bytes',
  start: 'POST /v1/runs',
  'ceiling-start': 'ceiling: parse + validate RunStartRequest',
  'ceiling-create1': 'ceiling: parse + validate NodeRunsCreateRequest (1)',
  'ceiling-create10': 'ceiling: parse + validate NodeRunsCreateRequest (10)',
  'ceiling-complete': 'ceiling: parse + validate NodeRunCompleteRequest',
  'create-long': 'POST /v1/node-runs (1 spec), long run',
  'get-auth': 'GET /v1/node-runs/{id}, bearer JWT',
  'get-metrics-off': 'GET /v1/node-runs/{id}, RC_METRICS=false',
  create1: 'POST /v1/node-runs (1 spec)',
  create10: 'POST /v1/node-runs (10 specs)',
  complete: 'POST /v1/node-runs/{id}:complete',
  cycle: 'cycle: start+create+complete x2',
  lifecycle: 'lifecycle: atomic Run via trivial AE',
};

/**
 * A Run with one child NodeRun (realistic inputs); returns the child's raw GET response. `headers`
 * (the bearer token of get-auth) go on every request.
 */
async function realNodeRun(server, headers = {}) {
  const call = async (method, path, body) => {
    const res = await request(`${server.url}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, ...JSON_HEADERS },
      body,
    });
    const raw = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new Error(`${method} ${path} -> ${res.statusCode}: ${raw}`);
    return { raw, contentType: String(res.headers['content-type']) };
  };
  const run = JSON.parse(
    (await call('POST', '/v1/runs', startRunBody({ question: 'What changed this quarter?' }))).raw,
  );
  const created = JSON.parse(
    (await call('POST', '/v1/node-runs', createBody(run.run_id, run.root_node_run_id, 1, realisticInputs, 0)))
      .raw,
  );
  const path = `/v1/node-runs/${created.node_runs[0].node_run_id}`;
  const { raw: body, contentType } = await call('GET', path);
  return { path, body, contentType };
}

async function withServer(start, use) {
  const server = asGroup(await start());
  try {
    const result = await use(server);
    const errors = server.members.flatMap((member) => errorLogLines(member.logPath));
    return { ...result, serviceErrorLogLines: errors.length, serviceErrorSample: errors[0] };
  } finally {
    await Promise.all(server.members.map((member) => stopProcess(member.child)));
  }
}

const AUTH_AUDIENCE = 'arp-run-coordinator';

/**
 * The get scenario on a service with ARP_AUTH_MODE=required against a loopback JWKS, every request
 * carrying the same valid bearer token (a client reusing its token; the service verifies it once and
 * then finds it in its verified-token cache).
 */
async function measureGetAuth(common, announce) {
  const issuer = await startIssuer('get-auth-issuer', Math.ceil(common.warmup + common.duration) + 3600);
  try {
    const authorization = `Bearer ${issuer.token}`;
    let sample;
    const result = await withServer(
      () =>
        startService('get-auth', {
          ARP_AUTH_MODE: 'required',
          ARP_AUTH_JWKS_URI: issuer.jwks_uri,
          ARP_AUTH_ISSUER: issuer.issuer,
          ARP_AUTH_AUDIENCE: AUTH_AUDIENCE,
        }),
      async (server) => {
        sample = await realNodeRun(server, { authorization });
        // Auth must really be on, or this row would measure the get scenario again.
        const res = await request(`${server.url}${sample.path}`);
        await res.body.dump();
        if (res.statusCode !== 401) {
          throw new Error(`get-auth: GET ${sample.path} without a token answered ${res.statusCode}, not 401`);
        }
        console.error(
          `   sample NodeRun: ${sample.body.length} bytes; bearer token ${issuer.token.length} B (RS256)`,
        );
        announce('get-auth');
        return runLoad(server, { ...common, name: 'get-auth', kind: 'get', path: sample.path }, undefined, {
          authorization,
        });
      },
    );
    return {
      ...result,
      responseBytes: sample.body.length,
      tokenBytes: issuer.token.length,
      serviceConfig:
        `defaults plus ARP_AUTH_MODE=required ARP_AUTH_JWKS_URI=${issuer.jwks_uri} ` +
        `ARP_AUTH_ISSUER=${issuer.issuer} ARP_AUTH_AUDIENCE=${AUTH_AUDIENCE} (loopback issuer: ` +
        'scripts/conformance/issuer.mjs, pinned with the load generator); every request carries the ' +
        `same RS256 bearer token (${issuer.token.length} B)`,
    };
  } finally {
    await stopProcess(issuer.child);
  }
}

/** Checks that GET /metrics answers `status`, so that the metrics on/off rows measure what they say. */
async function expectMetrics(server, status, name) {
  const res = await request(`${server.url}/metrics`);
  await res.body.dump();
  if (res.statusCode !== status) {
    throw new Error(`${name}: GET /metrics answered ${res.statusCode}, not ${status}`);
  }
}

/** The get scenario on a service with RC_METRICS=false: no /metrics and no per-request hook. */
async function measureGetMetricsOff(common, announce) {
  let sample;
  const result = await withServer(
    () => startService('get-metrics-off', { RC_METRICS: 'false' }),
    async (server) => {
      sample = await realNodeRun(server);
      await expectMetrics(server, 404, 'get-metrics-off');
      announce('get-metrics-off');
      return runLoad(server, { ...common, name: 'get-metrics-off', kind: 'get', path: sample.path });
    },
  );
  return { ...result, responseBytes: sample.body.length, serviceConfig: 'defaults plus RC_METRICS=false' };
}

/**
 * One round of get-auth, the GET scenario and its bare-Fastify ceiling, each on a fresh server, in
 * that order: get neighbours both get-auth and the ceiling.
 */
async function measurePair(common, want, announce, round = 1) {
  const pair = {};
  if (want.has('get-auth')) pair.getAuth = await measureGetAuth(common, announce);
  // Metrics off before get in even rounds, after it in odd ones, so that drift favours neither.
  if (want.has('get-metrics-off') && round % 2 === 0)
    pair.getMetricsOff = await measureGetMetricsOff(common, announce);
  if (!want.has('get') && !want.has('ceiling') && !want.has('get-metrics-off')) return pair;
  // The ceiling needs a real response first, so both start from the same service.
  let sample;
  const get = await withServer(
    () => startService('get'),
    async (server) => {
      sample = await realNodeRun(server);
      console.error(`   sample NodeRun: ${sample.body.length} bytes, content-type '${sample.contentType}'`);
      if (want.has('get-metrics-off')) await expectMetrics(server, 200, 'get');
      if (!want.has('get')) return undefined;
      announce('get');
      return runLoad(server, { ...common, name: 'get', kind: 'get', path: sample.path });
    },
  );
  if (want.has('get')) pair.get = { ...get, responseBytes: sample.body.length };
  if (want.has('get-metrics-off') && !pair.getMetricsOff)
    pair.getMetricsOff = await measureGetMetricsOff(common, announce);
  if (want.has('ceiling')) {
    pair.ceiling = await withServer(
      () => startCeiling('ceiling', { mode: 'get', status: 200, ...sample }),
      async (server) => {
        const res = await request(`${server.url}${sample.path}`);
        const body = Buffer.from(await res.body.arrayBuffer());
        if (!body.equals(sample.body) || res.headers['content-type'] !== sample.contentType) {
          throw new Error('the ceiling server does not serve the same bytes and content-type as the service');
        }
        announce('ceiling');
        const result = await runLoad(server, {
          ...common,
          name: 'ceiling',
          kind: 'get',
          path: sample.path,
        });
        return { ...result, responseBytes: body.length };
      },
    );
  }
  return pair;
}

/**
 * A ceiling server answering `sample` (status, content-type, body) on its route; for POSTs after the
 * service's body parser and Ajv validation of `schema` on `path`.
 */
function startCeiling(label, { mode, status, contentType = '', body = Buffer.alloc(0), path, schema }) {
  const bodyFile = join(logsDir, `${label}.answer`);
  writeFileSync(bodyFile, body);
  return startServer(label, 'scripts/bench/ceiling-server.mjs', [
    '--mode',
    mode,
    '--status',
    String(status),
    '--content-type',
    contentType,
    '--body-file',
    bodyFile,
    ...(path ? ['--path', path, '--schema', schema] : []),
  ]);
}

/** The POST scenarios with a ceiling: the contract's route and request schema, and the load. */
const WRITES = {
  start: { path: '/v1/runs', schema: 'RunStartRequest' },
  create1: { path: '/v1/node-runs', schema: 'NodeRunsCreateRequest' },
  create10: { path: '/v1/node-runs', schema: 'NodeRunsCreateRequest' },
  complete: { path: '/v1/node-runs/{node_run_id}:complete', schema: 'NodeRunCompleteRequest' },
};

/** One request and its raw answer; throws unless the status is `expect`. */
async function rawCall(server, method, path, body, expect = 200) {
  const res = await request(`${server.url}${path}`, {
    method,
    headers: body === undefined ? {} : JSON_HEADERS,
    body,
  });
  const raw = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== expect) throw new Error(`${method} ${path} -> ${res.statusCode}: ${raw}`);
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), body: raw };
}

/**
 * What the service answers to one request of scenario `name` (its ceiling answers the same), and
 * for events the path of a Run whose log holds 9 events: started, three children created (one call),
 * two of them completed, an evaluation reported.
 */
async function sampleAnswer(server, name) {
  const call = (method, path, body, expect) => rawCall(server, method, path, body, expect);
  const json = (answer) => JSON.parse(answer.body.toString('utf8'));
  if (name === 'start') return call('POST', '/v1/runs', startRunBody(realisticInputs(0)));
  const run = json(await call('POST', '/v1/runs', startRunBody({ question: 'What changed this quarter?' })));
  if (name === 'complete') {
    const [child] = json(
      await call('POST', '/v1/node-runs', createBody(run.run_id, run.root_node_run_id, 1, realisticInputs)),
    ).node_runs;
    return call('POST', `/v1/node-runs/${child.node_run_id}:complete`, COMPLETE_BODY, 204);
  }
  const specs = name === 'create10' ? 10 : name === 'create1' ? 1 : 3;
  const created = await call('POST', '/v1/node-runs', createBody(run.run_id, run.root_node_run_id, specs));
  if (name !== 'events') return created;
  const children = json(created).node_runs;
  for (const child of children.slice(0, 2))
    await call('POST', `/v1/node-runs/${child.node_run_id}:complete`, COMPLETE_BODY, 204);
  await call(
    'POST',
    `/v1/node-runs/${run.root_node_run_id}:evaluation`,
    JSON.stringify({ evaluation_result: { status: 'success', reason_code: 'children_succeeded' } }),
    204,
  );
  const path = `/v1/runs/${run.run_id}/events`;
  const events = await call('GET', path);
  const lines = events.body.toString('utf8').split('\n').filter(Boolean).length;
  if (lines !== 9) throw new Error(`the events sample Run has ${lines} events, not 9`);
  return { ...events, path, events: lines };
}

/** The load task of a scenario with a ceiling, for the service or (`ceiling`) for its ceiling. */
function ceilingedTask(name, options, sample, ceiling) {
  const completeRateGuess = 20_000;
  if (name === 'events') return { kind: 'get', path: sample.path };
  if (name === 'start') return { kind: 'start' };
  if (name === 'complete') return { kind: 'complete', completeRateGuess, ceiling };
  return { kind: 'create', specs: name === 'create10' ? 10 : 1, parents: options.parents, ceiling };
}

/** Environment of the service for a scenario: start makes a new live Run per request. */
const scenarioEnv = (name) => (name === 'start' ? { RC_MAX_LIVE_RUNS: String(100_000_000) } : {});

/**
 * A scenario and its ceiling in alternating rounds (each on fresh processes), the round with the
 * median ratio reported; server CPU per request for both.
 */
async function measureWithCeiling(common, options, name, announce) {
  const rounds = [];
  let sample;
  for (let round = 1; round <= options.pairRounds; round++) {
    if (options.pairRounds > 1)
      console.error(`\n== ${name} and its ceiling: round ${round} of ${options.pairRounds}`);
    const service = await withServices(name, { env: () => scenarioEnv(name) }, async (server) => {
      // Each round's service is a fresh process: its own sample (the events Run lives in it).
      sample = await sampleAnswer(server, name);
      announce(name);
      return runLoad(server, { ...common, name, ...ceilingedTask(name, options, sample, false) });
    });
    const write = WRITES[name];
    const ceiling = await withServer(
      () =>
        startCeiling(`ceiling-${name}`, {
          mode: write ? 'post' : 'stream',
          ...sample,
          ...(write ? { path: write.path, schema: write.schema } : {}),
        }),
      async (server) => {
        // The ceiling must answer exactly what the service answered.
        const probe =
          name === 'events'
            ? await rawCall(server, 'GET', sample.path)
            : name === 'complete'
              ? await rawCall(server, 'POST', '/v1/node-runs/node_run_probe:complete', COMPLETE_BODY, 204)
              : undefined;
        if (probe && (!probe.body.equals(sample.body) || probe.contentType !== sample.contentType)) {
          throw new Error(`the ${name} ceiling does not answer the service's bytes and content-type`);
        }
        announce(`ceiling-${name}`);
        return runLoad(server, {
          ...common,
          name: `ceiling-${name}`,
          ...ceilingedTask(name, options, sample, true),
        });
      },
    );
    rounds.push({ service, ceiling });
  }
  const ratio = (round) => round.service.rps / round.ceiling.rps;
  const median = medianBy(rounds, ratio);
  const summary = rounds.map((round) => ({
    rps: round.service.rps,
    ceilingRps: round.ceiling.rps,
    ratio: ratio(round),
  }));
  return {
    [name]: {
      ...median.service,
      responseBytes: sample.body.length,
      ...(sample.events ? { events: sample.events } : {}),
      vsCeiling: {
        ratio: ratio(median),
        ceilingRps: median.ceiling.rps,
        ceilingCpuUsPerRequest: cpuPerRequest(median.ceiling),
        definition: `${name} req/s / its ceiling's req/s in the same round`,
      },
      rounds: summary,
      ...(name === 'start'
        ? { serviceConfig: 'defaults plus RC_MAX_LIVE_RUNS=100000000 (each request starts a Run)' }
        : {}),
    },
    [`ceiling-${name}`]: { ...median.ceiling, responseBytes: sample.body.length, rounds: summary },
  };
}

/** Server CPU time per request, µs (the share of a core over the requests per second). */
const cpuPerRequest = (r) => (r.serverCpuPercent / 100 / r.rps) * 1e6;

/** Results of a scenario run with `instances` service processes are kept under `name@instances`. */
const keyOf = (name, instances) => (instances === 1 ? name : `${name}@${instances}`);
const nameOf = (key) => key.split('@')[0];
const instancesOf = (key) => Number(key.split('@')[1] ?? 1);

function labelOf(key) {
  const instances = instancesOf(key);
  return instances === 1 ? LABELS[nameOf(key)] : `${LABELS[nameOf(key)]}, ${instances} instances`;
}

async function runScenarios(options) {
  const common = { connections: options.connections, duration: options.duration, warmup: options.warmup };
  const want = new Set(options.scenarios);
  const results = {};
  const announce = (key) =>
    console.error(`\n-- ${labelOf(key)}: warm-up ${options.warmup}s + ${options.duration}s measured ...`);

  if (benchStore.kind === 'postgres') {
    if (want.has('get')) Object.assign(results, await measureDurableGet(common, options, announce));
  } else if (want.has('get') || want.has('ceiling') || want.has('get-auth') || want.has('get-metrics-off')) {
    Object.assign(results, await measureGetRounds(common, options, want, announce));
  }

  // Each scenario with every instance count in turn, so that the rows compared are measured close
  // together in time.
  const completeRateGuess = benchStore.kind === 'postgres' ? 3_000 : 20_000;
  const tasks = {
    create1: () => ({ kind: 'create', specs: 1, parents: options.parents }),
    create10: () => ({ kind: 'create', specs: 10, parents: options.parents }),
    // The first guess sizes the warm-up's pool of queued NodeRuns; the measured pool follows the
    // warm-up's rate. A durable store completes an order of magnitude fewer per second.
    complete: () => ({ kind: 'complete', completeRateGuess }),
    cycle: () => ({ kind: 'cycle' }),
    start: () => ({ kind: 'start' }),
  };
  const withCeilings = benchStore.kind !== 'postgres' && want.has('ceiling');
  for (const name of CEILINGED) {
    if (withCeilings && want.has(name))
      Object.assign(results, await measureWithCeiling(common, options, name, announce));
  }
  for (const name of ['events', 'start', 'create1', 'create10', 'complete', 'cycle', 'lifecycle']) {
    if (!want.has(name) || (withCeilings && CEILINGED.includes(name))) continue;
    for (const instances of options.instances) {
      const key = keyOf(name, instances);
      announce(key);
      results[key] =
        name === 'lifecycle'
          ? await measureLifecycle(common, key, instances)
          : await withServices(key, { instances, env: () => scenarioEnv(name) }, async (server) => {
              const sample = name === 'events' ? await sampleAnswer(server, 'events') : undefined;
              const task = name === 'events' ? { kind: 'get', path: sample.path } : tasks[name]();
              return runLoad(server, { ...common, name: key, ...task });
            });
    }
  }
  if (want.has('create-long')) {
    const long = { ...common, duration: options.longDuration };
    console.error(
      `\n-- ${LABELS['create-long']}: warm-up ${options.warmup}s + ${long.duration}s measured ...`,
    );
    results['create-long'] = await withServices('create-long', {}, (server) =>
      runLoad(server, { ...long, name: 'create-long', ...tasks.create1(), timeline: true }),
    );
  }
  return results;
}

/**
 * The lifecycle scenario on `instances` service processes, all dispatching to one trivial AE. With
 * several, each calls the AE under its own path prefix (/i1, /i2, …), so that the AE can tell who
 * dispatched what: every instance must have dispatched a share.
 */
async function measureLifecycle(common, key, instances) {
  const ae = await startAtomicExecutor(`${key}-ae`);
  const aeUrl = (i) => (instances === 1 ? ae.url : `${ae.url}/i${i + 1}`);
  try {
    const result = await withServices(
      key,
      { instances, env: (i) => ({ RC_ATOMIC_EXECUTOR_URL: aeUrl(i) }) },
      (server) => runLoad(server, { ...common, name: key, kind: 'lifecycle', aeUrl: ae.url }, ae),
    );
    result.latencyDefinition =
      'per NodeRun (= per Run, atomic root): load generator time from handing POST /v1/runs to undici until ' +
      'the GET /v1/runs/{id}/events?follow=true body ended (Run terminal), minus the AE time for that ' +
      'node_run_id (request event -> res.end in the AE); both on monotonic clocks, only durations subtracted';
    result.serviceConfig =
      `defaults plus RC_ATOMIC_EXECUTOR_URL=${instances === 1 ? ae.url : `${ae.url}/i<n> for instance n`} ` +
      '(trivial AE: scripts/bench/trivial-ae.mjs, node:http, pinned with the load generator)';
    if (instances > 1) {
      result.atomicExecutor.dispatchers = Array.from({ length: instances }, (_, i) => `/i${i + 1}`);
    }
    // The AE prints nothing unless it crashed or warned.
    const aeLog = readFileSync(ae.logPath, 'utf8').trim();
    if (aeLog) result.atomicExecutor.log = aeLog.slice(0, 600);
    return result;
  } finally {
    await stopProcess(ae.child);
  }
}

/**
 * The memory store's GET scenario: get-auth, get and ceiling in alternating rounds. The GET/ceiling
 * and get-auth/GET ratios are targets; the machine drifts by several percent between minutes, so for
 * each ratio the round with the median ratio is reported (both rows of a ratio always come from the
 * same round).
 */
async function measureGetRounds(common, options, want, announce) {
  const results = {};
  const members = ['get-auth', 'get', 'get-metrics-off', 'ceiling']
    .filter((name) => want.has(name))
    .join(', ');
  const rounds = [];
  for (let round = 1; round <= options.pairRounds; round++) {
    if (options.pairRounds > 1) console.error(`\n== ${members}: round ${round} of ${options.pairRounds}`);
    rounds.push(await measurePair(common, want, announce, round));
  }
  const ratio = (pair) => (pair.get && pair.ceiling ? pair.get.rps / pair.ceiling.rps : 0);
  const authRatio = (pair) => (pair.getAuth && pair.get ? pair.getAuth.rps / pair.get.rps : 0);
  const metricsRatio = (pair) => (pair.getMetricsOff && pair.get ? pair.get.rps / pair.getMetricsOff.rps : 0);
  const median = medianBy(rounds, ratio);
  const summary = rounds.map((pair) => ({
    getRps: pair.get?.rps,
    ceilingRps: pair.ceiling?.rps,
    ratio: ratio(pair) || undefined,
    getAuthRps: pair.getAuth?.rps,
    authRatio: authRatio(pair) || undefined,
    getMetricsOffRps: pair.getMetricsOff?.rps,
    metricsRatio: metricsRatio(pair) || undefined,
  }));
  // Without a ceiling the get row shown is the one of the metrics-on/off median round, if measured.
  const getRound = want.has('ceiling') ? median : medianBy(rounds, metricsRatio);
  if (getRound.get) results.get = { ...getRound.get, rounds: summary };
  if (median.ceiling) results.ceiling = { ...median.ceiling, rounds: summary };
  const metricsMedian = medianBy(rounds, metricsRatio);
  if (metricsMedian.getMetricsOff) {
    results['get-metrics-off'] = {
      ...metricsMedian.getMetricsOff,
      ...(metricsMedian.get
        ? {
            vsGet: {
              ratio: metricsRatio(metricsMedian),
              getRps: metricsMedian.get.rps,
              getLatencyMs: metricsMedian.get.latencyMs,
              definition: 'get req/s / get-metrics-off req/s of the same round (metrics on / metrics off)',
            },
          }
        : {}),
      rounds: summary,
    };
  }
  const authMedian = medianBy(rounds, authRatio);
  if (authMedian.getAuth) {
    results['get-auth'] = {
      ...authMedian.getAuth,
      ...(authMedian.get
        ? {
            vsGet: {
              ratio: authRatio(authMedian),
              getRps: authMedian.get.rps,
              getLatencyMs: authMedian.get.latencyMs,
              definition: 'get-auth req/s / get req/s of the same round (auth on / auth off)',
            },
          }
        : {}),
      rounds: summary,
    };
  }
  return results;
}

/** The element with the median `by` (the lower one of an even count). */
const medianBy = (items, by) => [...items].sort((a, b) => by(a) - by(b))[Math.floor((items.length - 1) / 2)];

/**
 * GET on the durable store, as a ratio to the memory store's GET measured in the same round: per
 * round the memory store's GET, then the durable one with each instance count, each on fresh
 * services. For every instance count the round with the median ratio is reported; the memory row
 * shown is the one of the one-instance (or first) count's median round.
 */
async function measureDurableGet(common, options, announce) {
  const rounds = [];
  for (let round = 1; round <= options.pairRounds; round++) {
    if (options.pairRounds > 1) {
      console.error(`\n== GET, memory store and PostgreSQL: round ${round} of ${options.pairRounds}`);
    }
    const memory = await measureGet(common, 'get-memory', { store: MEMORY_STORE }, announce);
    const durable = {};
    for (const instances of options.instances) {
      durable[instances] = await measureGet(common, keyOf('get', instances), { instances }, announce);
    }
    rounds.push({ memory, durable });
  }
  const results = {};
  for (const instances of options.instances) {
    const ratio = (round) => round.durable[instances].rps / round.memory.rps;
    const median = medianBy(rounds, ratio);
    if (instances === options.instances[0]) results['get-memory'] = median.memory;
    results[keyOf('get', instances)] = {
      ...median.durable[instances],
      vsMemory: {
        ratio: ratio(median),
        memoryRps: median.memory.rps,
        memoryLatencyMs: median.memory.latencyMs,
        definition: 'GET req/s on PostgreSQL / GET req/s on the memory store of the same round',
      },
      rounds: rounds.map((round) => ({
        memoryRps: round.memory.rps,
        rps: round.durable[instances].rps,
        ratio: ratio(round),
      })),
    };
  }
  return results;
}

/** The get scenario on fresh services (`services`: withServices options) with a real NodeRun. */
async function measureGet(common, key, services, announce) {
  let sample;
  const result = await withServices(key, services, async (server) => {
    sample = await realNodeRun(server);
    announce(key);
    return runLoad(server, { ...common, name: key, kind: 'get', path: sample.path });
  });
  return { ...result, responseBytes: sample.body.length };
}

// ---------------------------------------------------------------------------------------------
// Memory probe

function runMemoryProbe(variant, count) {
  const [cmd, args] = pinned(0, process.execPath, [
    '--expose-gc',
    'scripts/bench/memory-probe.mjs',
    '--variant',
    variant,
    '--count',
    String(count),
  ]);
  const child = track(spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`memory probe '${variant}' did not finish within 180 s`));
    }, 180_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`memory probe '${variant}' exited with code ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Report

const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-');
const fmtMs = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');
const fmtPct = (n) => (Number.isFinite(n) ? `${Math.round(n)}%` : '-');
const fmtRatio = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');

function failuresOf(name, r) {
  const failures = [];
  const bad = r.non2xx + r.errors + r.timeouts;
  if (bad > 0) {
    failures.push(
      `${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts; status codes ${JSON.stringify(r.statusCodes)}` +
        (r.failureSample ? `; first failure: ${JSON.stringify(r.failureSample)}` : ''),
    );
  }
  if (r.warmup?.non2xx > 0) failures.push(`${name}: ${r.warmup.non2xx} failed requests during warm-up`);
  if (r.warmup?.badRuns > 0) failures.push(`${name}: ${r.warmup.badRuns} bad Runs during warm-up`);
  if (r.repeatedCompletions > 0) {
    failures.push(
      `${name}: ${r.repeatedCompletions} requests re-completed an already completed NodeRun (pool too small); the number is not valid`,
    );
  }
  if (r.badRuns > 0) {
    failures.push(
      `${name}: ${r.badRuns} Runs did not end succeeded with the expected events; e.g. ${JSON.stringify(r.badRunSample)}`,
    );
  }
  if (r.missingAeTimings > 0) {
    failures.push(`${name}: ${r.missingAeTimings} completed NodeRuns have no execute recorded by the AE`);
  }
  const ae = r.atomicExecutor;
  if (ae && (ae.badRequests > 0 || ae.unexpected > 0 || ae.duplicates > 0)) {
    failures.push(
      `${name}: the AE got ${ae.badRequests} bad executes, ${ae.unexpected} unexpected requests, ${ae.duplicates} repeated node_run_ids`,
    );
  }
  if (ae?.log) failures.push(`${name}: the AE wrote to its log (${ae.log.split('\n')[0]})`);
  for (const prefix of ae?.dispatchers ?? []) {
    if (!(ae.executesBy?.[prefix] > 0))
      failures.push(`${name}: the instance calling ${prefix} dispatched nothing`);
  }
  if (ae && r.non2xx + r.errors + r.timeouts === 0 && ae.executes !== r.runsAttempted) {
    failures.push(`${name}: the AE executed ${ae.executes} NodeRuns for ${r.runsAttempted} Runs started`);
  }
  if (r.serviceErrorLogLines > 0) {
    failures.push(
      `${name}: ${r.serviceErrorLogLines} error lines in the service log, e.g. ${r.serviceErrorSample}`,
    );
  }
  return failures;
}

function notesOf(key, r) {
  const name = nameOf(key);
  const notes = [];
  if (r.vsMemory) {
    notes.push(
      `${r.vsMemory.ratio.toFixed(2)}x memory store (same-round memory GET ${fmtInt(r.vsMemory.memoryRps)} req/s)`,
    );
  }
  if (name === 'cycle') notes.push(`${fmtInt(r.cyclesPerSecond)} cycles/s; latency = whole 4-request cycle`);
  if (name === 'lifecycle') {
    notes.push(
      `${fmtInt(r.completedNodeRunsPerSecond)} NodeRuns/s completed; latency = coordinator-added per NodeRun ` +
        `(start_run sent -> Run terminal, minus AE time p50 ${fmtMs(r.aeHandlingMs.p50)} ms); ` +
        `undeducted p50/p99 ${fmtMs(r.totalLatencyMs.p50)}/${fmtMs(r.totalLatencyMs.p99)} ms; ` +
        `AE CPU ${fmtPct(r.peerCpuPercent)} on cpu1`,
    );
    const by = r.atomicExecutor?.executesBy;
    if (r.atomicExecutor?.dispatchers) {
      notes.push(
        `executes per instance ${r.atomicExecutor.dispatchers.map((p) => fmtInt(by?.[p])).join(' / ')}`,
      );
    }
  }
  if (r.nodeRunsPerSecond) notes.push(`${fmtInt(r.nodeRunsPerSecond)} NodeRuns/s created`);
  if (name === 'complete')
    notes.push(`pool ${fmtInt(r.setup.measuredPool)} queued, ${fmtInt(r.setup.completionsIssued)} used`);
  if (name === 'get-auth') {
    if (r.vsGet) {
      notes.push(
        `${r.vsGet.ratio.toFixed(2)}x auth off (same-round get ${fmtInt(r.vsGet.getRps)} req/s, ` +
          `p50/p99 ${fmtMs(r.vsGet.getLatencyMs.p50)}/${fmtMs(r.vsGet.getLatencyMs.p99)} ms)`,
      );
    }
    if (r.vsGet && r.rounds?.length > 1) {
      notes.push(
        `per round ${r.rounds.map((round) => round.authRatio?.toFixed(2) ?? '-').join(', ')} (median shown)`,
      );
    }
    notes.push(`${r.tokenBytes} B RS256 token on every request`);
  }
  if (name === 'get-metrics-off' && r.vsGet) {
    notes.push(
      `metrics on = ${r.vsGet.ratio.toFixed(2)}x metrics off (same-round get ${fmtInt(r.vsGet.getRps)} req/s, ` +
        `p50/p99 ${fmtMs(r.vsGet.getLatencyMs.p50)}/${fmtMs(r.vsGet.getLatencyMs.p99)} ms)`,
    );
    if (r.rounds?.length > 1) {
      notes.push(
        `per round ${r.rounds.map((round) => round.metricsRatio?.toFixed(2) ?? '-').join(', ')} (median shown)`,
      );
    }
  }
  if (r.vsCeiling && r.rounds?.length > 1) {
    notes.push(
      `ratio per round ${r.rounds.map((round) => round.ratio.toFixed(2)).join(', ')} (median shown)`,
    );
  }
  if (r.timeline) {
    const t = r.timeline;
    notes.push(
      `slowest second ${fmtInt(t.minPerSecond)} req (${t.minOverMedian.toFixed(2)}x the median second, ` +
        `${fmtInt(t.medianPerSecond)}), at ${t.slowestSecond} s; slowest answer of any second ` +
        `${fmtMs(Math.max(...t.maxLatencyMsPerSecond))} ms`,
    );
  }
  if (r.events) notes.push(`${r.events} events`);
  if (r.responseBytes) notes.push(`${r.responseBytes} B body`);
  if (name === 'get' && r.rounds?.length > 1) {
    notes.push(
      `ratio per round ${r.rounds.map((round) => round.ratio?.toFixed(2) ?? '-').join(', ')} (median shown)`,
    );
  }
  if (r.clientBound) {
    notes.push(
      r.peerCpuPercent === undefined
        ? 'LOAD GENERATOR SATURATED: client-bound'
        : 'CPU1 SATURATED (load generator + AE): client-bound',
    );
  }
  if (r.contended) {
    notes.push(
      r.dbCpuPercent === undefined
        ? 'SERVER NOT SATURATED: CPU contention?'
        : 'SERVER SIDE NOT SATURATED: disk or contention?',
    );
  }
  if (r.serverSideCpuPercent !== undefined) notes.push(`server side CPU ${fmtPct(r.serverSideCpuPercent)}`);
  if (r.serverMemory?.rss) notes.push(`server RSS ${fmtInt(r.serverMemory.rss / 2 ** 20)} MiB`);
  return notes.join('; ');
}

/**
 * Keys in scenario order (the memory store's GET just before the durable one, each scenario's own
 * ceiling just after it), then by instances.
 */
function rowOrder(results) {
  const rank = (key) => {
    const name = nameOf(key);
    if (name === 'get-memory') return 0.5;
    // A scenario's own ceiling right after it.
    if (name.startsWith('ceiling-')) return ALL_SCENARIOS.indexOf(name.slice('ceiling-'.length)) + 1.5;
    return ALL_SCENARIOS.indexOf(name) + 1;
  };
  return Object.keys(results).sort((a, b) => rank(a) - rank(b) || instancesOf(a) - instancesOf(b));
}

/** A row's throughput over its ceiling's: GET's is the GET ceiling, the others' their own. */
function ceilingRatio(key, r, results) {
  if (r.vsCeiling) return r.vsCeiling.ratio;
  if (nameOf(key) === 'get' && results.ceiling && !r.vsMemory) return r.rps / results.ceiling.rps;
  return Number.NaN;
}

function printTable(results) {
  const ceilinged = Object.entries(results).some(([key, r]) =>
    Number.isFinite(ceilingRatio(key, r, results)),
  );
  const durable = Object.values(results).some((r) => r.dbCpuPercent !== undefined);
  const columns = [
    ['scenario', (key) => labelOf(key)],
    ['req/s', (_, r) => fmtInt(r.rps)],
    ['p50 ms', (_, r) => fmtMs(r.latencyMs.p50)],
    ['p99 ms', (_, r) => fmtMs(r.latencyMs.p99)],
    ...(ceilinged ? [['x ceiling', (key, r) => fmtRatio(ceilingRatio(key, r, results))]] : []),
    ['non-2xx', (_, r) => String(r.non2xx + r.errors + r.timeouts)],
    [durable ? 'svc CPU' : 'srv CPU', (_, r) => fmtPct(r.serverCpuPercent)],
    ['CPU us/req', (_, r) => fmtInt(cpuPerRequest(r))],
    ...(durable ? [['db CPU', (_, r) => fmtPct(r.dbCpuPercent)]] : []),
    ['load CPU', (_, r) => fmtPct(r.clientCpuPercent)],
    ['notes', (key, r) => notesOf(key, r)],
  ];
  const header = columns.map(([title]) => title);
  const rows = rowOrder(results).map((key) => columns.map(([, cell]) => cell(key, results[key])));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) =>
    cells
      .map((cell, i) =>
        i === 0 || i === cells.length - 1 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]),
      )
      .join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

/** Durable-store targets; the p99 target applies to every row but the memory reference and cycle. */
const DURABLE_TARGETS = {
  lifecycleRunsPerSecond: 500,
  create1Rps: 2_000,
  getVsMemory: 0.4,
  p99Ms: 25,
};

function durableTargetsOf(results, options) {
  const targets = [];
  const t = DURABLE_TARGETS;
  for (const [key, r] of Object.entries(results)) {
    const name = nameOf(key);
    const label = labelOf(key);
    if (name === 'lifecycle') {
      targets.push({
        target: `${label}: >= ${fmtInt(t.lifecycleRunsPerSecond)} Runs/s`,
        measured: `${fmtInt(r.completedNodeRunsPerSecond)} Runs/s`,
        pass: r.completedNodeRunsPerSecond >= t.lifecycleRunsPerSecond,
      });
    }
    if (name === 'create1') {
      targets.push({
        target: `${label}: >= ${fmtInt(t.create1Rps)} req/s`,
        measured: `${fmtInt(r.rps)} req/s`,
        pass: r.rps >= t.create1Rps,
      });
    }
    if (r.vsMemory) {
      targets.push({
        target: `${label}: >= ${t.getVsMemory}x the memory store's GET`,
        measured: `${r.vsMemory.ratio.toFixed(2)}x (same round)`,
        pass: r.vsMemory.ratio >= t.getVsMemory,
      });
    }
    if (name !== 'get-memory' && name !== 'cycle') {
      targets.push({
        target: `${label}: p99 < ${t.p99Ms} ms at ${options.connections} connections`,
        measured: `${fmtMs(r.latencyMs.p99)} ms`,
        pass: r.latencyMs.p99 < t.p99Ms,
      });
    }
  }
  return targets;
}

function targetsOf(results, options) {
  if (benchStore.kind === 'postgres') return durableTargetsOf(results, options);
  const targets = [];
  const get = results.get;
  const ceiling = results.ceiling;
  if (get && ceiling) {
    const ratio = get.rps / ceiling.rps;
    targets.push({
      target: 'GET NodeRun >= 0.9x ceiling',
      measured: `${ratio.toFixed(2)}x`,
      pass: ratio >= 0.9,
    });
  }
  for (const [name, least] of [
    ['start', 0.6],
    ['create1', 0.6],
    ['create10', 0.6],
    ['events', 0.7],
  ]) {
    const r = results[name];
    if (!r?.vsCeiling) continue;
    targets.push({
      target: `${LABELS[name]} >= ${least}x its ceiling`,
      measured: `${r.vsCeiling.ratio.toFixed(2)}x (same round; ${fmtInt(cpuPerRequest(r))} vs ${fmtInt(r.vsCeiling.ceilingCpuUsPerRequest)} us CPU/req)`,
      pass: r.vsCeiling.ratio >= least,
    });
  }
  if (results.lifecycle) {
    targets.push({
      target: 'atomic lifecycle >= 4,000 Runs/s',
      measured: `${fmtInt(results.lifecycle.completedNodeRunsPerSecond)} Runs/s`,
      pass: results.lifecycle.completedNodeRunsPerSecond >= 4000,
    });
  }
  const long = results['create-long']?.timeline;
  if (long) {
    targets.push({
      target: `no second of the ${long.perSecond.length} s create run below half the median second`,
      measured: `slowest ${long.minOverMedian.toFixed(2)}x the median`,
      pass: long.minOverMedian >= 0.5,
    });
  }
  if (get) {
    targets.push({
      target: `GET NodeRun p99 < 10 ms at ${options.connections} connections`,
      measured: `${fmtMs(get.latencyMs.p99)} ms`,
      pass: get.latencyMs.p99 < 10,
    });
  }
  const metricsOff = results['get-metrics-off']?.vsGet;
  if (metricsOff) {
    targets.push({
      target: 'GET NodeRun with metrics on >= 0.9x metrics off',
      measured: `${metricsOff.ratio.toFixed(2)}x (same round)`,
      pass: metricsOff.ratio >= 0.9,
    });
  }
  const auth = results['get-auth']?.vsGet;
  if (auth) {
    targets.push({
      target: 'GET NodeRun with auth >= 0.85x auth off',
      measured: `${auth.ratio.toFixed(2)}x (same round)`,
      pass: auth.ratio >= 0.85,
    });
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const options = parseArgs(process.argv.slice(2));
  mkdirSync(logsDir, { recursive: true });
  execFileSync(process.execPath, [join(root, 'scripts/ensure-build.mjs')], { stdio: 'inherit' });

  pinning = detectPinning();
  serviceOverrides = options.serviceEnv;
  serviceNodeArgs = options.nodeArgs;
  if (options.cpuProf) {
    profileDir = join(resultsDir, 'profiles');
    mkdirSync(profileDir, { recursive: true });
  }
  if (options.store === 'postgres') {
    benchStore = await startBenchPostgres({
      cpus: pinning ? options.pgCpus : undefined,
      settings: options.pgSettings,
      log: (line) => console.error(`bench: ${line}`),
      logPath: join(logsDir, 'postgres.log'),
    });
  }
  try {
    await measureAndReport(options);
  } finally {
    await benchStore.stop?.();
  }
}

/** Where PostgreSQL runs, for the output: its CPU list, and with whom it shares it. */
function databasePlacement() {
  const placement = benchStore.facts.placement;
  if (placement === 'unpinned') return 'PostgreSQL unpinned (either core)';
  if (placement === 'taskset -c 0') return 'PostgreSQL cpu0 (with the service)';
  if (placement === 'taskset -c 1') return 'PostgreSQL cpu1 (with the load generator)';
  return `PostgreSQL ${placement}`;
}

async function measureAndReport(options) {
  const durable = benchStore.kind === 'postgres';
  const meta = {
    ...machineFacts(),
    pinning: pinning
      ? {
          server: 'taskset -c 0',
          loadGenerator: 'taskset -c 1',
          ...(options.scenarios.includes('lifecycle') ? { atomicExecutor: 'taskset -c 1 (lifecycle)' } : {}),
          ...(options.scenarios.includes('get-auth')
            ? { tokenIssuer: 'taskset -c 1 (get-auth; idle while measuring)' }
            : {}),
          ...(durable ? { database: benchStore.facts.placement } : {}),
        }
      : { server: 'none', loadGenerator: 'none', warning: 'taskset unavailable: unpinned' },
    store: durable
      ? {
          kind: 'postgres',
          instances: options.instances,
          ...benchStore.facts,
          schema: 'a fresh schema per scenario (RC_DATABASE_SCHEMA), dropped after it, then CHECKPOINT',
        }
      : { kind: 'memory' },
    connections: options.connections,
    durationSeconds: options.duration,
    warmupSeconds: options.warmup,
    serviceConfig:
      'defaults: node dist/server.js --port P; LOG_LEVEL, RC_* and ARP_AUTH_* unset (LOG_LEVEL=info, ' +
      'no request log, auth disabled); get-auth and lifecycle add their own settings (see their rows)' +
      (durable
        ? '; PostgreSQL: RC_DATABASE_URL and RC_DATABASE_SCHEMA set, the other RC_DATABASE_* and lease ' +
          'settings at their defaults (pool of 10 per instance)'
        : '') +
      (Object.keys(options.serviceEnv).length > 0
        ? `; NOT THE DEFAULTS: --service-env ${JSON.stringify(options.serviceEnv)}`
        : '') +
      (options.nodeArgs.length > 0 ? `; NOT THE DEFAULTS: --node-arg ${options.nodeArgs.join(' ')}` : ''),
    ...(options.pgSettings && Object.keys(options.pgSettings).length > 0
      ? { postgresSettingsGiven: options.pgSettings }
      : {}),
  };
  const placement = durable ? `, ${databasePlacement()}` : '';
  console.error(
    `bench: node ${meta.node}, ${meta.cpuModel}, ${meta.cores} cores, pinning ${pinning ? `server=cpu0 load=cpu1${placement}` : 'OFF'}; ` +
      `${options.connections} connections, ${options.warmup}s warm-up + ${options.duration}s per scenario`,
  );
  if (meta.loadAverageAtStart[0] > 0.5) {
    console.error(
      `WARNING: load average is ${meta.loadAverageAtStart[0]}; something else is using the CPUs and the numbers will be noisy.`,
    );
  }

  const results = await runScenarios(options);

  let memory;
  if (!options.skipMemory) {
    console.error(
      `\n-- memory: ${fmtInt(options.memoryNodes)} NodeRuns held, minimal and realistic inputs ...`,
    );
    memory = {
      method:
        `node --expose-gc scripts/bench/memory-probe.mjs: buildApp() from dist/app.js with the default memory store; ` +
        `one Run (root composite.x), then ${options.memoryNodes} child NodeRuns (atomic.x) created under the root via ` +
        'app.inject POST /v1/node-runs in batches of 1000; heapUsed/RSS read after repeated gc() before and after. ' +
        'The delta includes the NodeRun object, its store record, its node_run_assigned event, the id index entries ' +
        'and its children-index entry. minimal: inputs {}; realistic: 5 input fields (~220 B of JSON), unique strings per NodeRun.',
      minimal: await runMemoryProbe('minimal', options.memoryNodes),
      realistic: await runMemoryProbe('realistic', options.memoryNodes),
    };
  }

  const failures = Object.entries(results).flatMap(([name, r]) => failuresOf(name, r));
  const targets = targetsOf(results, options);

  console.log(`\nARP Run Coordinator benchmark, ${meta.date}`);
  console.log(
    `node ${meta.node} | ${meta.cpuModel} | ${meta.cores} cores | pinning: ${pinning ? `service cpu0, load generator cpu1${placement}` : 'NONE'} | ` +
      `${options.connections} connections | ${options.warmup}s warm-up + ${options.duration}s measured per scenario`,
  );
  if (durable) {
    const { version, settings } = benchStore.facts;
    console.log(
      `store: PostgreSQL ${version} (throwaway, data in ${meta.store.dataDirectory}), synchronous_commit=${settings.synchronous_commit}, ` +
        `fsync=${settings.fsync} (${settings.wal_sync_method}), shared_buffers=${settings.shared_buffers}; ` +
        `fresh schema per scenario; load average at start ${meta.loadAverageAtStart.join(' ')}`,
    );
  }
  console.log('');
  printTable(results);
  console.log(
    durable
      ? '\nsvc CPU = the service processes, db CPU = all PostgreSQL processes, each as a share of one core during the ' +
          'measured window; together the server side. Latency percentiles from 10 us buckets.'
      : '\nx ceiling = req/s / the ceiling req/s of the same round; latency percentiles from 10 us buckets; CPU = share of one ' +
          'core during the measured window; CPU us/req = server CPU time per request.',
  );
  if (results['get-auth']?.vsGet) {
    console.log("get-auth: 'x auth off' = its req/s / get's req/s in the same round (notes).");
  }
  if (results['get-metrics-off']?.vsGet) {
    console.log(
      "get-metrics-off: 'metrics on = x metrics off' = get's req/s / its req/s in the same round (notes).",
    );
  }

  if (memory) {
    console.log(
      `\nMemory held per NodeRun (${fmtInt(options.memoryNodes)} children of one composite root, after GC):`,
    );
    for (const m of [memory.minimal, memory.realistic]) {
      console.log(
        `  ${m.variant.padEnd(9)} ${fmtInt(m.heapBytesPerNodeRun)} B heap/NodeRun, ${fmtInt(m.rssBytesPerNodeRun)} B RSS/NodeRun ` +
          `(heap +${fmtInt(m.heapUsedDelta / 2 ** 20)} MiB, RSS +${fmtInt(m.rssDelta / 2 ** 20)} MiB; wire size ${m.sampleNodeRunWireBytes} B)`,
      );
    }
    console.log(
      '  includes the NodeRun, its store record, its node_run_assigned event and its index entries.',
    );
  }

  const contended = Object.keys(results).filter((name) => results[name].contended);
  if (contended.length > 0) {
    console.log(
      `\nWARNING: the server${durable ? ' side' : ''} used less than 85% of a core in ${contended.join(', ')} although ` +
        'the load generator was not saturated: other processes were competing for the CPUs' +
        `${durable ? ', or the server side waited for the disk' : ''}. Re-run on an idle machine.`,
    );
  }

  if (targets.length > 0) {
    console.log('\nTargets:');
    for (const t of targets) console.log(`  ${t.pass ? 'PASS' : 'MISS'}  ${t.target}: ${t.measured}`);
  }

  meta.loadAverageAtEnd = os.loadavg().map((v) => Math.round(v * 100) / 100);
  const report = { ok: failures.length === 0, failures, meta, scenarios: results, targets, memory };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  // The durable run has a file of its own, so that it does not replace the memory store's.
  const suffix = durable ? '-postgres' : '';
  writeFileSync(join(resultsDir, `latest${suffix}.json`), json);
  writeFileSync(
    join(resultsDir, `bench${suffix}-${meta.date.replaceAll(':', '-').replace(/\..+$/, '')}.json`),
    json,
  );
  console.log(`\nwrote bench-results/latest${suffix}.json`);

  if (failures.length > 0) {
    console.error('\nFAILED: every request must succeed; the numbers above are not valid.');
    for (const failure of failures) console.error(`  - ${failure}`);
    process.exitCode = 1;
  }
}

main()
  .catch((error) => {
    console.error(`\nbench failed: ${error?.stack ?? error}`);
    process.exitCode = 1;
  })
  .finally(() => {
    killAll('SIGKILL');
    // Nothing should keep the loop alive, but never hang: exit once the report is out.
    setTimeout(() => process.exit(), 200).unref();
  });
