// What this machine's PostgreSQL does without Node in the way: pgbench's select-only (-S) and simple
// update (-N) workloads, plus pg_test_fsync for the disk's flush latency, which bounds
// synchronous_commit=on transactions per connection.
//
//   node scripts/pg/bench-baseline.mjs [--clients 10,50] [--seconds 3] [--scale 10] [--pin]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { machineNote, openServer, parseOptions, report } from './bench-common.mjs';

const USAGE =
  'usage: node scripts/pg/bench-baseline.mjs [--clients 10,50] [--seconds 3] [--scale 10] [--pin]';
const options = parseOptions({ clients: '10,50', seconds: 3, scale: 10 }, USAGE);

function tool(server, name, args, extraEnv = {}) {
  const result = spawnSync(join(server.bindir, name), args, {
    encoding: 'utf8',
    env: { ...process.env, ...server.env, ...extraEnv },
  });
  if (result.status !== 0) throw new Error(`${name} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

function pgbench(server, mode, clients, sync) {
  const args = ['-n', '-c', String(clients), '-j', '2', '-T', String(options.seconds), '-M', 'prepared'];
  const flags = { select: ['-S'], update: ['-N'] }[mode];
  const out = tool(server, 'pgbench', [...args, ...flags], { PGOPTIONS: `-c synchronous_commit=${sync}` });
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  return { workload: `pgbench ${flags[0]}`, clients, sync, tps: Math.round(tps), avgLatencyMs: latency };
}

/** pg_test_fsync's open_datasync / fdatasync / fsync lines (ops/s and µs per op). */
function testFsync(server) {
  const out = tool(server, 'pg_test_fsync', ['-s', '1', '-f', join(server.dir, 'fsync.test')]);
  const lines = out.split('\n');
  const first = lines.findIndex((l) => l.includes('one 8kB write'));
  const picked = lines
    .slice(first, first + 8)
    .filter((l) => /ops\/sec/.test(l) && /(fdatasync|fsync|open_datasync)/.test(l));
  return picked.map((l) => l.trim().replace(/\s+/g, ' ')).join('\n');
}

async function run() {
  const note = machineNote(options);
  if (process.env.RC_DATABASE_URL) throw new Error('bench-baseline needs its own throwaway server');
  const server = await openServer(options);
  try {
    tool(server, 'pgbench', ['-i', '-q', '-s', String(options.scale)]);
    const rows = [];
    for (const clients of options.clients.split(',').map(Number)) {
      rows.push(pgbench(server, 'select', clients, 'on'));
      for (const sync of ['on', 'off']) rows.push(pgbench(server, 'update', clients, sync));
    }
    const fsync = testFsync(server);
    report(
      'pg-baseline',
      rows,
      `${note}; pgbench -j 2 -M prepared, scale ${options.scale}, ${options.seconds} s each`,
    );
    console.log(`\npg_test_fsync (one 8 kB write per sync, on ${server.dir}):\n${fsync}`);
  } finally {
    await server.stop();
  }
}

await run();
