/**
 * Real coordinator processes on one real PostgreSQL database, for the cluster suites
 * (`test/cluster/*.pgtest.ts`, run by `npm run test:postgres`).
 *
 * Each process is `node --import tsx src/server.ts`: the service's own entry point run from the
 * sources, so the suites need no build and always test the code in the tree (startup costs about a
 * second). The process gets nothing from the runner's environment but PATH-like basics: every RC_*
 * and ARP_* setting is the test's. A preloaded lifeline (lifeline.mjs) ends it if the runner dies.
 *
 * `useCluster()` gives every test its own fresh schema (RC_DATABASE_SCHEMA), so tests never see each
 * other's Runs, and short leases (RC_LEASE_TTL_MS=1500, RC_RECONCILE_INTERVAL_MS=200) so that
 * recovery happens within a few seconds. After each test every process still alive is killed, the
 * fake services are closed and the schema is dropped; a failing test prints the processes' logs.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, inject } from 'vitest';
import { type FakeService, startFake } from '../helpers/executors.js';
import { PROJECT_ROOT } from '../helpers/paths.js';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CoordinatorProcess {
  /** The test's name for it ("a", "b"): its executor URLs end in `/<name>` (see `executorUrl`). */
  readonly name: string;
  /** Its RC_INSTANCE_ID, the owner of its leases. */
  readonly instanceId: string;
  /** `http://127.0.0.1:<port>`, where it listens. */
  readonly url: string;
  readonly pid: number;
  readonly exited: Promise<Exit>;
  /** Everything it wrote so far (pino JSON lines on stdout, anything on stderr). */
  output(): string;
  /** The first log line matching `pattern`, already written or still to come. */
  logLine(pattern: RegExp): Promise<string>;
  /** The first `count` log lines matching `pattern`, once that many have been written. */
  logLines(pattern: RegExp, count: number): Promise<string[]>;
  /** Sends `signal`; resolves when the process has exited. */
  kill(signal: NodeJS.Signals): Promise<Exit>;
}

/** Settings every process of a cluster test gets unless the test says otherwise. */
export const CLUSTER_DEFAULTS: Readonly<Record<string, string>> = {
  RC_HOST: '127.0.0.1',
  RC_PORT: '0',
  LOG_LEVEL: 'info',
  RC_DATABASE_POOL_SIZE: '5',
  RC_LEASE_TTL_MS: '1500',
  RC_RECONCILE_INTERVAL_MS: '200',
};

/** How long a process may take to start listening (generous: two cores, shared). */
const START_BOUND_MS = 30_000;

const SERVER = path.join(PROJECT_ROOT, 'src', 'server.ts');
const LIFELINE = path.join(PROJECT_ROOT, 'test', 'cluster', 'lifeline.mjs');

/** The runner's environment without any coordinator setting, so that only the test's apply. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || /^(RC_|ARP_|PG)/.test(name) || name === 'LOG_LEVEL') continue;
    env[name] = value;
  }
  return env;
}

export function spawnCoordinator(
  name: string,
  env: Record<string, string>,
): { process: Promise<CoordinatorProcess>; kill: () => Promise<Exit> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', LIFELINE, SERVER], {
    cwd: PROJECT_ROOT,
    env: { ...baseEnv(), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const lines: string[] = [];
  let partial = '';
  const waiters: {
    pattern: RegExp;
    count: number;
    resolve: (lines: string[]) => void;
    reject: (e: Error) => void;
  }[] = [];
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      for (const waiter of waiters.splice(0)) {
        waiter.reject(new Error(`${name} exited (${code ?? signal}) before logging ${waiter.pattern}`));
      }
      resolve(exit);
    });
  });
  const matching = (pattern: RegExp) => lines.filter((line) => pattern.test(line));
  const onLine = (line: string) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      const found = waiter.pattern.test(line) ? matching(waiter.pattern) : [];
      if (found.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(found.slice(0, waiter.count));
      }
    }
  };
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    output += chunk;
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) onLine(line);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    output += chunk;
  });
  const logLines = (pattern: RegExp, count: number): Promise<string[]> => {
    const seen = matching(pattern);
    if (seen.length >= count) return Promise.resolve(seen.slice(0, count));
    if (exit) return Promise.reject(new Error(`${name} exited before logging ${pattern} ${count} times`));
    return new Promise((resolve, reject) => waiters.push({ pattern, count, resolve, reject }));
  };
  const logLine = async (pattern: RegExp) => (await logLines(pattern, 1))[0]!;
  const kill = (signal: NodeJS.Signals) => {
    if (!exit) child.kill(signal);
    return exited;
  };

  const ready = (async (): Promise<CoordinatorProcess> => {
    const listening = await within(
      logLine(/"msg":"Server listening at /),
      START_BOUND_MS,
      `${name} to start listening`,
    );
    // Logged once startup is complete: migrations applied, the reconciler's first pass done.
    await within(logLine(/"msg":"run coordinator ready/), START_BOUND_MS, `${name} to be ready`);
    const url = /Server listening at (http:\/\/[^"]+)"/.exec(listening)?.[1];
    if (!url) throw new Error(`${name}: no address in ${listening}`);
    return {
      name,
      instanceId: env.RC_INSTANCE_ID ?? '',
      url,
      pid: child.pid!,
      exited,
      output: () => output,
      logLine,
      logLines,
      kill,
    };
  })();
  ready.catch(() => {});
  return {
    process: ready.catch((error: Error) => {
      throw new Error(`${error.message}\n--- output of ${name} ---\n${output}`);
    }),
    kill: () => kill('SIGKILL'),
  };
}

export interface Cluster {
  /** The schema of the running test (fresh for each test). */
  readonly schema: string;
  /**
   * Starts a coordinator process on the test's schema with `env` on top of the defaults; its
   * instance id is `<name>-<schema>` unless `env` sets one. Resolves once it is ready.
   */
  start(name: string, env?: Record<string, string>): Promise<CoordinatorProcess>;
  /** A loopback fake service, closed after the test. */
  fake(): Promise<FakeService>;
  /** A query on the test's database (tables are `${cluster.schema}.<table>`). */
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /**
   * A fresh database for the test alone, for tests that change database-wide settings (pass its URL
   * as RC_DATABASE_URL; `query` still runs on the shared one); dropped after the test.
   */
  database(): Promise<{ readonly name: string; readonly url: string }>;
}

export function useCluster(): Cluster {
  const databaseUrl = inject('databaseUrl');
  let schema = '';
  let kills: (() => Promise<Exit>)[] = [];
  let started: Promise<CoordinatorProcess>[] = [];
  let fakes: FakeService[] = [];
  let client: pg.Client | undefined;
  let databases: string[] = [];

  const db = async () => {
    if (!client) {
      client = new pg.Client(databaseUrl);
      await client.connect();
    }
    return client;
  };

  beforeEach((context) => {
    schema = `cluster_${randomBytes(6).toString('hex')}`;
    const mine = { schema, started: [] as Promise<CoordinatorProcess>[] };
    started = mine.started;
    context.onTestFailed(async () => {
      for (const p of await Promise.allSettled(mine.started)) {
        if (p.status === 'fulfilled') {
          process.stderr.write(`\n--- output of ${p.value.name} (${mine.schema}) ---\n${p.value.output()}\n`);
        }
      }
    });
  });

  afterEach(async () => {
    const [k, f, d, s] = [kills, fakes, databases, schema];
    kills = [];
    fakes = [];
    databases = [];
    await Promise.all(k.map((kill) => kill()));
    await Promise.all(f.map((fake) => fake.close()));
    const c = await db();
    client = undefined;
    try {
      await c.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      for (const name of d) await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });

  return {
    get schema() {
      return schema;
    },
    start(name, env = {}) {
      const spawned = spawnCoordinator(name, {
        ...CLUSTER_DEFAULTS,
        RC_DATABASE_URL: databaseUrl,
        RC_DATABASE_SCHEMA: schema,
        RC_INSTANCE_ID: `${name}-${schema}`,
        ...env,
      });
      kills.push(spawned.kill);
      started.push(spawned.process);
      return spawned.process;
    },
    async fake() {
      const fake = await startFake();
      fakes.push(fake);
      return fake;
    },
    async query(sql, params = []) {
      return (await (await db()).query(sql, params)).rows;
    },
    async database() {
      const name = schema;
      await (await db()).query(`CREATE DATABASE "${name}"`);
      databases.push(name);
      const url = new URL(databaseUrl);
      url.pathname = `/${name}`;
      return { name, url: url.toString() };
    },
  };
}

/** `promise`, or a rejection naming `what` if it has not settled within `ms` (a bound, not a wait). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

/**
 * Polls `check` until it holds, failing after `ms` (a generous bound for a condition some process
 * makes true in the background; the pause between checks only spares the CPU).
 */
export async function pollUntil(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
