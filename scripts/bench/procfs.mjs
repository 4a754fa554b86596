// CPU time and memory of processes, read from /proc (Linux), for scripts/bench.mjs.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The fields of /proc/<pid>/stat after the command name, or undefined when the process is gone. */
function statFields(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) used so far by `pid`, or NaN. */
export function cpuSeconds(pid) {
  const fields = statFields(pid);
  if (!fields) return Number.NaN;
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

/**
 * CPU seconds used so far by `rootPid` and its children, including children that have already
 * exited and been waited for (their time is then in the root's cutime/cstime). For PostgreSQL's
 * postmaster that is every backend and auxiliary process, also those (autovacuum workers,
 * connections) that end during a measurement. Grandchildren are not counted: PostgreSQL has none.
 */
export function treeCpuSeconds(rootPid) {
  const root = statFields(rootPid);
  if (!root) return Number.NaN;
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(entry);
    if (fields && Number(fields[1]) === rootPid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / CLK_TCK;
}

/** Current and peak resident set size of `pid` in bytes. */
export function rssOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1]) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { rss: Number.NaN, peak: Number.NaN };
  }
}
