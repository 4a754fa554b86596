// Shared by the PostgreSQL micro-benchmarks (bench-reads.mjs, bench-writes.mjs): options, a
// throwaway server, closed-loop callers with latency percentiles, and CPU accounting for our process
// and for the server's processes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startThrowawayPostgres } from './throwaway.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `--name value` options with numeric defaults; `--pin` pins the server to CPU 0 and us to CPU 1. */
export function parseOptions(defaults, usage) {
  const options = { ...defaults, pin: false };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (name === 'pin') options.pin = true;
    else if (name === 'help') {
      console.log(usage);
      process.exit(0);
    } else if (name in defaults) {
      const raw = argv[++i];
      options[name] = typeof defaults[name] === 'number' ? Number(raw) : raw;
      if (typeof defaults[name] === 'number' && !(options[name] > 0)) throw new Error(`--${name}: ${raw}`);
    } else throw new Error(`unknown option ${argv[i]}\n${usage}`);
  }
  return options;
}

/** A throwaway server, or RC_DATABASE_URL when set (then server CPU is not measured). */
export async function openServer(options) {
  if (process.env.RC_DATABASE_URL) return { url: process.env.RC_DATABASE_URL, stop: async () => {} };
  if (options.pin) spawnSync('taskset', ['-a', '-pc', '1', String(process.pid)], { stdio: 'ignore' });
  return startThrowawayPostgres(options.pin ? { cpus: '0' } : {});
}

/** CPU seconds (user + system) used so far by a process and all its children, live or exited. */
export function treeCpuSeconds(rootPid) {
  if (!rootPid) return Number.NaN;
  const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    const ppid = Number(fields[1]);
    // utime + stime; for the postmaster also cutime + cstime, where the CPU of backends that exited
    // (autovacuum workers, closed connections) goes once it reaps them.
    if (ppid === rootPid) total += (Number(fields[11]) + Number(fields[12])) / ticks;
    if (pid === rootPid) total += fields.slice(11, 15).reduce((sum, f) => sum + Number(f), 0) / ticks;
  }
  return total;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/**
 * `callers` closed loops calling `op(i)` for `warmup` then `seconds` seconds; only the second part
 * is counted. Returns ops/s, latency percentiles in ms, and CPU per op and in % of one core, for
 * this process and for the server's processes (all backends together).
 */
export async function measure({ op, callers, seconds, warmup, serverPid }) {
  let phase = 'warmup';
  let issued = 0;
  const latencies = [];
  let errors = 0;
  const caller = async () => {
    while (phase !== 'done') {
      const counted = phase === 'measure';
      const start = performance.now();
      try {
        await op(issued++);
      } catch (error) {
        errors++;
        if (errors === 1) console.error(`  first error: ${error.code ?? ''} ${error.message}`);
      }
      if (counted && phase === 'measure') latencies.push(performance.now() - start);
    }
  };
  const loops = Array.from({ length: callers }, caller);
  await new Promise((resolve) => setTimeout(resolve, warmup * 1000));
  phase = 'measure';
  const cpu0 = process.cpuUsage();
  const server0 = treeCpuSeconds(serverPid);
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  phase = 'done';
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverCpu = treeCpuSeconds(serverPid) - server0;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  const ops = latencies.length;
  const round = (v, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
  return {
    opsPerSecond: Math.round(ops / elapsed),
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    clientCpuUsPerOp: round((cpu.user + cpu.system) / ops, 0),
    clientCpuPercent: round(((cpu.user + cpu.system) / 1e6 / elapsed) * 100, 0),
    serverCpuUsPerOp: round((serverCpu * 1e6) / ops, 0),
    serverCpuPercent: round((serverCpu / elapsed) * 100, 0),
    errors,
  };
}

/**
 * Runs every scenario `count` times, round-robin, and keeps for each the round with the most ops/s:
 * on a shared machine other work only ever takes throughput away, so the best round is the closest
 * to what the code can do. `spread` keeps the range of all rounds.
 */
export async function bestOfRounds(count, scenarios, runOne) {
  const all = scenarios.map(() => []);
  for (let round = 0; round < count; round++) {
    for (const [i, scenario] of scenarios.entries()) {
      const result = await runOne(scenario);
      all[i].push(result);
      console.error(
        `round ${round + 1} ${Object.values(scenario.labels).join(' ')}: ${result.opsPerSecond}/s p99 ${result.p99} ms`,
      );
    }
  }
  return scenarios.map((scenario, i) => {
    const rates = all[i].map((r) => r.opsPerSecond);
    const best = all[i].reduce((a, b) => (b.opsPerSecond > a.opsPerSecond ? b : a));
    return { ...scenario.labels, ...best, spread: `${Math.min(...rates)}–${Math.max(...rates)}` };
  });
}

export function machineNote(options) {
  const load = os.loadavg().map((v) => v.toFixed(2));
  const pinned = options.pin ? 'server on CPU 0, this process on CPU 1' : 'unpinned';
  return `${os.cpus().length} CPUs, load average ${load.join(' ')} at start, ${pinned}`;
}

/** Prints a markdown table and writes bench-results/<name>.json (git-ignored). */
export function report(name, rows, note) {
  const columns = Object.keys(rows[0] ?? {});
  console.log(`\n| ${columns.join(' | ')} |\n|${columns.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${columns.map((c) => row[c]).join(' | ')} |`);
  console.log(`\n${note}`);
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify({ note, rows }, null, 2)}\n`);
}

/** ~1 KB of JSON, shaped like a NodeRun document. */
export function nodeRunDoc(i) {
  return {
    node_run_id: `nr-${i}`,
    node_type_ref: { node_type_id: 'example.atomic', version: '1.0.0' },
    state: 'queued',
    inputs: { prompt: 'x'.repeat(700), index: i },
    extensions: { 'x-bench': { tags: ['a', 'b', 'c'], priority: i % 7 } },
    created_at: '2025-01-01T00:00:00.000Z',
  };
}
