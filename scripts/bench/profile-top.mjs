// The top items of a V8 CPU profile (node --cpu-prof; `npm run bench -- --cpu-prof` writes one per
// service process): self time by function and by source file, and total (inclusive) time by function,
// as shares of the sampled time with the idle and GC samples listed apart.
//   node scripts/bench/profile-top.mjs bench-results/profiles/create1.cpuprofile [--top 30] [--filter text]
import { readFileSync } from 'node:fs';

const path = process.argv[2];
if (!path) {
  console.error('usage: node scripts/bench/profile-top.mjs FILE.cpuprofile [--top N] [--filter TEXT]');
  process.exit(2);
}
const option = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
};
const top = Number(option('top', '30'));
const filter = option('filter', undefined);

const profile = JSON.parse(readFileSync(path, 'utf8'));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

const root = process.cwd();
const where = ({ callFrame: f }) => {
  const url = f.url.replace(`file://${root}/`, '').replace(/^.*node_modules\//, 'node_modules/');
  return url ? `${url}:${f.lineNumber + 1}` : '(native)';
};
const nameOf = (node) => `${node.callFrame.functionName || '(anonymous)'} ${where(node)}`;
const fileOf = (node) => {
  const url = node.callFrame.url.replace(`file://${root}/`, '');
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
  return pkg ? `node_modules/${pkg[1]}` : url || `(${node.callFrame.functionName || 'native'})`;
};

// Samples per node, from the sample list weighted by the time deltas.
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
});

const bySelf = new Map();
const byFile = new Map();
const byTotal = new Map();
const special = new Map();
for (const [id, time] of self) {
  const node = nodes.get(id);
  const name = node.callFrame.functionName;
  if (['(idle)', '(garbage collector)', '(program)'].includes(name)) {
    special.set(name, (special.get(name) ?? 0) + time);
    continue;
  }
  bySelf.set(nameOf(node), (bySelf.get(nameOf(node)) ?? 0) + time);
  byFile.set(fileOf(node), (byFile.get(fileOf(node)) ?? 0) + time);
  // Inclusive: every distinct function on the stack gets the sample once.
  const seen = new Set();
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const key = nameOf(nodes.get(at));
    if (seen.has(key)) continue;
    seen.add(key);
    byTotal.set(key, (byTotal.get(key) ?? 0) + time);
  }
}

const pct = (time) => `${((time / total) * 100).toFixed(1).padStart(5)}%`;
const print = (title, map) => {
  console.log(`\n${title}`);
  const rows = [...map].filter(([key]) => !filter || key.includes(filter)).sort((a, b) => b[1] - a[1]);
  for (const [key, time] of rows.slice(0, top)) console.log(`  ${pct(time)}  ${key}`);
};
console.log(`${path}: ${(total / 1e6).toFixed(1)} s sampled`);
for (const [name, time] of special) console.log(`  ${pct(time)}  ${name}`);
print('self time by function', bySelf);
print('self time by file or package', byFile);
print('total time by function', byTotal);
