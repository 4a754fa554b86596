#!/usr/bin/env node
// A throwaway PostgreSQL server for tests, benchmarks and local runs: a fresh cluster in a temp
// directory, listening on a free loopback port, with the default durability settings (fsync and
// synchronous_commit on), removed again when it is stopped or when the process that started it dies.
//
//   node scripts/pg/throwaway.mjs [-c name=value ...] -- <command...>
//       runs the command with RC_DATABASE_URL, RC_TEST_DATABASE_URL and PG* set, then stops the
//       server; exits with the command's exit code (128 + signal number if it was killed)
//   node scripts/pg/throwaway.mjs [-c name=value ...] --print
//       prints `export …` lines for a shell and keeps the server until Ctrl-C / SIGTERM
//
// As a library: `const pg = await startThrowawayPostgres(); … pg.url …; await pg.stop();`
//
// Needs the PostgreSQL 15 server binaries (Debian's `postgresql` package; PG_BINDIR overrides the
// directory). PostgreSQL refuses to run as root, so as root the server runs as the `postgres` OS user
// (THROWAWAY_PG_OS_USER overrides) and the temp directory is handed to that user; as any other user it
// runs as that user and needs no sudo. TMPDIR chooses where the cluster lives (it must be a real
// disk for durability numbers to mean anything).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_BINDIR = '/usr/lib/postgresql/15/bin';
const APP_USER = 'rc';
const APP_DATABASE = 'rc';
const READY_TIMEOUT_MS = 30_000;
const PORT_ATTEMPTS = 5;

/**
 * Starts a fresh server. Options: `settings` (extra `-c name=value` server settings, e.g.
 * `{ synchronous_commit: 'off' }`), `maxConnections` (default 200), `cpus` (a taskset CPU list the
 * server is pinned to, for benchmarks), `log` (a function for progress lines; default silent).
 */
export async function startThrowawayPostgres(options = {}) {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const bindir = findBindir();
  const owner = serverOwner();
  const dir = mkdtempSync(join(os.tmpdir(), 'rc-pg-'));
  const cleanupDir = () => rmSync(dir, { recursive: true, force: true });
  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    const superPassword = randomBytes(16).toString('hex');
    const appPassword = randomBytes(16).toString('hex');
    initCluster({ bindir, owner, dir, superPassword });
    const server = await startServerOnFreePort({ bindir, owner, dir, options });
    try {
      createAppDatabase({ bindir, owner, dir, port: server.port, appPassword });
    } catch (error) {
      await server.stop();
      throw error;
    }
    log(`postgres ready on 127.0.0.1:${server.port} in ${Date.now() - started} ms (${dir})`);
    const url = `postgres://${APP_USER}:${appPassword}@127.0.0.1:${server.port}/${APP_DATABASE}`;
    const adminUrl = `postgres://postgres:${superPassword}@127.0.0.1:${server.port}/${APP_DATABASE}`;
    let stopping;
    return {
      url,
      adminUrl,
      port: server.port,
      pid: server.pid,
      dir,
      bindir,
      env: {
        RC_DATABASE_URL: url,
        RC_TEST_DATABASE_URL: url,
        PGHOST: '127.0.0.1',
        PGPORT: String(server.port),
        PGUSER: APP_USER,
        PGPASSWORD: appPassword,
        PGDATABASE: APP_DATABASE,
      },
      stop() {
        // The watchdog goes last: if we die half-way through, it still finishes the job.
        stopping ??= server
          .stop()
          .then(cleanupDir)
          .finally(() => server.watchdog.kill('SIGKILL'));
        return stopping;
      },
    };
  } catch (error) {
    cleanupDir();
    throw error;
  }
}

function findBindir() {
  if (process.env.PG_BINDIR) {
    if (existsSync(join(process.env.PG_BINDIR, 'postgres'))) return process.env.PG_BINDIR;
    throw new Error(`PG_BINDIR=${process.env.PG_BINDIR} holds no postgres binary`);
  }
  if (!installedBindir() && process.getuid?.() === 0) {
    // CI runs as root on Debian without the server installed; installing it is what a human would do.
    spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq postgresql'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const bindir = installedBindir();
  if (!bindir)
    throw new Error(
      `no PostgreSQL server in ${DEFAULT_BINDIR}: apt-get install postgresql, or set PG_BINDIR`,
    );
  return bindir;
}

/** Debian's PostgreSQL 15 (what the project targets), else the newest major version installed. */
function installedBindir() {
  if (existsSync(join(DEFAULT_BINDIR, 'postgres'))) return DEFAULT_BINDIR;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions
    .sort((a, b) => Number(b) - Number(a))
    .find((v) => existsSync(join(base, v, 'bin', 'postgres')));
  return newest && join(base, newest, 'bin');
}

/** The OS user the server runs as when we are root (PostgreSQL refuses root); undefined otherwise. */
function serverOwner() {
  if (process.getuid?.() !== 0) return undefined;
  const name = process.env.THROWAWAY_PG_OS_USER || 'postgres';
  const id = (flag) => {
    const result = spawnSync('id', [flag, name], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`running as root needs an OS user "${name}": ${result.stderr}`);
    return Number(result.stdout.trim());
  };
  return { name, uid: id('-u'), gid: id('-g') };
}

function runAs(owner, command, args, { input } = {}) {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    input,
    env: serverEnv(),
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ?? ''}`.trim();
    throw new Error(`${command} failed (${result.status ?? result.signal}):\n${output}`);
  }
  return result.stdout;
}

/** The server and its tools see a neutral locale and no PG* variables from the caller. */
function serverEnv() {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C', TZ: 'UTC' };
}

function initCluster({ bindir, owner, dir, superPassword }) {
  const pwfile = join(dir, 'superuser-password');
  writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o600 });
  if (owner) chownSync(pwfile, owner.uid, owner.gid);
  // --no-sync: the cluster is disposable, so initdb need not flush it; the server itself runs with
  // fsync on. Local (socket) connections are trusted: the socket lives in our 0700 temp directory.
  runAs(owner, join(bindir, 'initdb'), [
    ...['-D', join(dir, 'data'), '-U', 'postgres', `--pwfile=${pwfile}`],
    ...['--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
  ]);
  rmSync(pwfile);
}

function createAppDatabase({ bindir, owner, dir, port, appPassword }) {
  // initdb's empty `postgres` database becomes the application's: CREATE DATABASE would write and
  // flush a copy of the template (0.4-2 s here), a rename is instant. The script goes through stdin so
  // the password is not on a command line.
  const script = [
    `CREATE ROLE ${APP_USER} LOGIN CREATEDB PASSWORD '${appPassword}';`,
    `ALTER DATABASE postgres RENAME TO ${APP_DATABASE};`,
    `ALTER DATABASE ${APP_DATABASE} OWNER TO ${APP_USER};`,
  ].join('\n');
  const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'postgres'];
  runAs(owner, join(bindir, 'psql'), [...args, '-d', 'template1', '-f', '-'], { input: script });
}

async function startServerOnFreePort({ bindir, owner, dir, options }) {
  let lastError;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    try {
      return await startServer({ bindir, owner, dir, port, options });
    } catch (error) {
      // Another process may take the port between our probe and the server's bind; try another.
      if (!/could not (bind|create any TCP)/.test(String(error))) throw error;
      lastError = error;
    }
  }
  throw lastError;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startServer({ bindir, owner, dir, port, options }) {
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const logFd = openSync(logFile, 'a', 0o600);
  if (owner) chownSync(logFile, owner.uid, owner.gid);
  const settings = {
    port: String(port),
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    max_connections: String(options.maxConnections ?? 200),
    fsync: 'on',
    synchronous_commit: 'on',
    ...options.settings,
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  // taskset execs the postmaster, so the pid stays the server's and every backend inherits the CPUs.
  const [command, commandArgs] = options.cpus
    ? ['taskset', ['-c', String(options.cpus), join(bindir, 'postgres'), ...args]]
    : [join(bindir, 'postgres'), args];
  // Detached: Ctrl-C in a terminal reaches only us, and we shut the server down in order.
  const child = spawn(command, commandArgs, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: serverEnv(),
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  closeSync(logFd);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.unref();
  const watchdog = startWatchdog(child.pid, dir);
  try {
    await waitUntilReady({ dataDir, exited, logFile });
  } catch (error) {
    watchdog.kill('SIGKILL');
    child.kill('SIGQUIT');
    await exited;
    throw error;
  }
  return {
    port,
    pid: child.pid,
    watchdog,
    async stop() {
      // Referenced again so that the process waits for the server instead of exiting under us.
      child.ref();
      // SIGQUIT is the "immediate" shutdown: the data is about to be deleted, so no checkpoint.
      child.kill('SIGQUIT');
      await exited;
    },
  };
}

/**
 * A detached shell that stops the server and removes the directory when our process dies without
 * calling stop() (crash, SIGKILL, a test runner killing us): its stdin is a pipe from us, and EOF on
 * it is the signal.
 */
function startWatchdog(pid, dir) {
  const script = `read _ignored
kill -INT ${pid} 2>/dev/null
i=0
while kill -0 ${pid} 2>/dev/null; do
  i=$((i + 1))
  [ $i -eq 200 ] && kill -QUIT ${pid} 2>/dev/null
  [ $i -eq 300 ] && kill -KILL ${pid} 2>/dev/null
  sleep 0.05
done
rm -rf '${dir}'`;
  const watchdog = spawn('sh', ['-c', script], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  watchdog.unref();
  // The pipe must not keep our event loop alive either.
  watchdog.stdin.on('error', () => {});
  watchdog.stdin.unref();
  return watchdog;
}

/** pg_ctl's own readiness test: the postmaster writes "ready" into postmaster.pid once it accepts. */
async function waitUntilReady({ dataDir, exited, logFile }) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exit;
  exited.then((result) => {
    exit = result;
  });
  const pidFile = join(dataDir, 'postmaster.pid');
  while (Date.now() < deadline) {
    if (exit) {
      throw new Error(`postgres exited (${exit.code ?? exit.signal}) during startup:\n${tail(logFile)}`);
    }
    if (existsSync(pidFile)) {
      const status = readFileSync(pidFile, 'utf8').split('\n')[7]?.trim();
      if (status === 'ready') return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`postgres not ready after ${READY_TIMEOUT_MS} ms:\n${tail(logFile)}`);
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n');
  } catch {
    return '(no server log)';
  }
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `usage: node scripts/pg/throwaway.mjs [-c name=value ...] -- <command...>
       node scripts/pg/throwaway.mjs [-c name=value ...] --print`;

function parseCli(argv) {
  const settings = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return { settings, command: argv.slice(i + 1) };
    if (arg === '--print') return { settings, print: true };
    if (arg === '-c') {
      const [name, ...value] = (argv[++i] ?? '').split('=');
      if (!name || value.length === 0) throw new Error(`-c needs name=value\n${USAGE}`);
      settings[name] = value.join('=');
      continue;
    }
    throw new Error(`unknown argument ${arg}\n${USAGE}`);
  }
  throw new Error(USAGE);
}

async function main() {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
    if (cli.command?.length === 0) throw new Error(USAGE);
  } catch (error) {
    console.error(error.message);
    return 2;
  }
  const log = (line) => console.error(`[throwaway-pg] ${line}`);
  const server = await startThrowawayPostgres({ settings: cli.settings, log });
  try {
    return cli.print ? await holdForShell(server) : await runCommand(cli.command, server.env);
  } finally {
    await server.stop();
    log('stopped and removed');
  }
}

async function holdForShell(server) {
  for (const [name, value] of Object.entries(server.env)) console.log(`export ${name}='${value}'`);
  console.error('[throwaway-pg] running; Ctrl-C (or SIGTERM) stops it and removes the data');
  // Signal listeners do not keep the process alive, and the server's handle is unreferenced.
  const keepAlive = setInterval(() => {}, 2 ** 30);
  await new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(keepAlive);
  return 0;
}

async function runCommand([command, ...args], env) {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  // The child is in our process group, so a terminal's Ctrl-C reaches it directly; a SIGTERM sent
  // to us alone is passed on. Either way we wait for it to exit before stopping the server.
  const forward = (signal) => child.kill(signal);
  process.on('SIGINT', () => {});
  process.on('SIGTERM', forward);
  const { code, signal, error } = await new Promise((resolve) => {
    child.once('error', (spawnError) => resolve({ error: spawnError }));
    child.once('exit', (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal }));
  });
  if (error) {
    console.error(`[throwaway-pg] cannot run ${command}: ${error.message}`);
    return 127; // the shell's "command not found"
  }
  if (signal) return 128 + (os.constants.signals[signal] ?? 0);
  return code ?? 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error(`[throwaway-pg] ${error.stack ?? error}`);
      process.exit(1);
    },
  );
}
